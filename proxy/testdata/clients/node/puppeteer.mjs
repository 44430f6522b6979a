// Puppeteer through sessionproxy, with Debian's Chromium:
//   node puppeteer.mjs [URL] [PROXY_HOST:PORT] [ADMIN_URL]
// The proxy needs auth.challenge: true (or auth.users): Chromium sends the
// session's user name only when the proxy asks for credentials.
import puppeteer from 'puppeteer-core';

const [url = 'https://shop.example/', proxy = '127.0.0.1:8080', admin = 'http://127.0.0.1:8081'] = process.argv.slice(2);
const spki = (await (await fetch(`${admin}/ca.spki`)).text()).trim(); // also logged at start

const browser = await puppeteer.launch({
    executablePath: '/usr/bin/chromium',
    args: [
        `--proxy-server=http://${proxy}`,
        '--proxy-bypass-list=<-loopback>', // else Chromium skips the proxy for 127.0.0.1 and localhost
        `--ignore-certificate-errors-spki-list=${spki}`,
        ...(process.getuid() === 0 ? ['--no-sandbox'] : []), // Chromium refuses root otherwise
    ],
});
try {
    const page = await browser.newPage();
    await page.authenticate({ username: 'session-checkout-7', password: 'x' });
    const response = await page.goto(url);
    console.log(JSON.stringify({ status: response.status(), session: response.headers()['x-session-id'], title: await page.title() }));
} finally {
    await browser.close();
}
