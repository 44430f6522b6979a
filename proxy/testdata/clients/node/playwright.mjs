// Playwright through sessionproxy, with Debian's Chromium:
//   node playwright.mjs [URL] [PROXY_HOST:PORT] [ADMIN_URL]
// The proxy needs auth.challenge: true (or auth.users): Chromium sends the
// session's user name only when the proxy asks for credentials. Playwright
// sends loopback targets through the proxy by itself.
import { chromium } from 'playwright-core';

const [url = 'https://shop.example/', proxy = '127.0.0.1:8080', admin = 'http://127.0.0.1:8081'] = process.argv.slice(2);
const spki = (await (await fetch(`${admin}/ca.spki`)).text()).trim(); // also logged at start

const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    proxy: { server: `http://${proxy}`, username: 'session-checkout-7', password: 'x' },
    args: [`--ignore-certificate-errors-spki-list=${spki}`],
});
try {
    const page = await browser.newPage();
    const response = await page.goto(url);
    console.log(JSON.stringify({ status: response.status(), session: (await response.allHeaders())['x-session-id'], title: await page.title() }));
} finally {
    await browser.close();
}
