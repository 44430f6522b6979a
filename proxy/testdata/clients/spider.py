"""Scrapy spider for TestScrapyThroughProxy (proxy/clients_test.go).

Run as:  python3 -m scrapy runspider spider.py -a base=http://127.0.0.1:PORT -O out.json
with HTTP_PROXY/http_proxy naming the session proxy. Scrapy keeps no cookies
(COOKIES_ENABLED = False): whatever cookie reaches the origin was added by the
proxy from the session's jar.

- /login and every /p/N page are requested with "X-Session-Id: scrapy-a", so
  they are pinned to one session; pages are followed through their links.
- /blocked is requested without the header: the proxy picks the session.

Each response becomes one item: url, status, the session headers the proxy
added, and the cookie the origin says it saw (#cookie in the page).
"""

import scrapy

PINNED = {"X-Session-Id": "scrapy-a"}


class SiteSpider(scrapy.Spider):
    name = "site"
    custom_settings = {
        "COOKIES_ENABLED": False,
        "ROBOTSTXT_OBEY": False,
        "TELNETCONSOLE_ENABLED": False,
        "RETRY_ENABLED": False,  # the proxy retries, not Scrapy
        "HTTPERROR_ALLOW_ALL": True,
        "CONCURRENT_REQUESTS": 4,
        "DOWNLOAD_TIMEOUT": 15,
        "LOG_LEVEL": "INFO",
        "REQUEST_FINGERPRINTER_IMPLEMENTATION": "2.7",
    }

    def __init__(self, base=None, **kwargs):
        super().__init__(**kwargs)
        if not base:
            raise ValueError("spider argument base is required (-a base=http://host:port)")
        self.base = base.rstrip("/")

    def start_requests(self):
        yield scrapy.Request(self.base + "/login", headers=PINNED, callback=self.after_login)
        yield scrapy.Request(self.base + "/blocked", callback=self.record)

    def item(self, response):
        return {
            "url": response.url,
            "path": response.url[len(self.base):],
            "status": response.status,
            "session": response.headers.get("X-Session-Id", b"").decode(),
            "retries": response.headers.get("X-Session-Retries", b"").decode(),
            "rule": response.headers.get("X-Session-Rule", b"").decode(),
            "cookieSeen": (response.css("#cookie::text").get() or ""),
            # What Scrapy itself sent: with COOKIES_ENABLED = False, never a cookie.
            "sentCookie": response.request.headers.get("Cookie", b"").decode(),
            "body": response.text[:500],
        }

    def after_login(self, response):
        yield self.item(response)
        for href in response.css("a::attr(href)").getall():
            yield response.follow(href, headers=PINNED, callback=self.page)

    def page(self, response):
        yield self.item(response)
        for href in response.css("a::attr(href)").getall():
            yield response.follow(href, headers=PINNED, callback=self.page)

    def record(self, response):
        yield self.item(response)
