// Crawlee through sessionproxy, for TestCrawleeThroughProxy
// (proxy/clients_test.go) and the README:
//   node crawl.mjs BASE_URL PROXY_HOST:PORT OUT.json
// Crawlee's session ids become the proxy's sessions (the proxy username
// session-<id>), and a session Crawlee retires is retired in the proxy
// through its own host, http://sessionproxy/.
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { HttpCrawler, ProxyConfiguration } from 'crawlee';

const [base, proxy, out] = process.argv.slice(2);
const [proxyHost, proxyPort] = proxy.split(':');

// retireInProxy retires the proxy's session of that id: a plain-HTTP
// request through the proxy to its own host.
function retireInProxy(id) {
    return new Promise((resolve, reject) => {
        const req = http.request({
            host: proxyHost, port: proxyPort, method: 'POST',
            path: `http://sessionproxy/sessions/${encodeURIComponent(id)}/retire`,
            headers: { Host: 'sessionproxy' },
        }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
        req.on('error', reject);
        req.end();
    });
}

const retirements = [];
const retiredIds = [];
const results = [];
const crawler = new HttpCrawler({
    proxyConfiguration: new ProxyConfiguration({
        newUrlFunction: (sessionId) => `http://session-${sessionId}:x@${proxy}`,
    }),
    useSessionPool: true,
    persistCookiesPerSession: false, // the proxy keeps each session's cookies
    sessionPoolOptions: { maxPoolSize: 3 },
    maxRequestRetries: 3,
    maxConcurrency: 1,
    preNavigationHooks: [() => {
        if (!crawler.sessionRetiredHooked) {
            crawler.sessionRetiredHooked = true;
            crawler.sessionPool.on('sessionRetired', (session) => { retiredIds.push(session.id); retirements.push(retireInProxy(session.id)); });
        }
    }],
    async requestHandler({ request, body, session, response }) {
        if (String(body).includes('Please verify you are a human')) {
            session.retire(); // a block no status code shows
            throw new Error(`soft block at ${request.url}`);
        }
        results.push({ url: request.url, crawleeSession: session.id, proxySession: response.headers['x-session-id'] });
    },
});

await crawler.run([`${base}/p/1`, `${base}/soft`, `${base}/p/2`]);
const statuses = await Promise.all(retirements);
writeFileSync(out, JSON.stringify({ results, retired: retiredIds, retireStatuses: statuses }));
