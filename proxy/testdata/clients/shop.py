# The README's Scrapy example; TestReadmeScrapyExample runs it against a
# local shop with -a base=http://127.0.0.1:PORT.
#   https_proxy=http://127.0.0.1:8080 http_proxy=http://127.0.0.1:8080 scrapy runspider shop.py -o out.json
import scrapy

BUYER = {"X-Session-Id": "buyer-1"}


class Shop(scrapy.Spider):
    name = "shop"
    custom_settings = {"COOKIES_ENABLED": False}  # the session's jar is the proxy's

    def __init__(self, base="https://shop.example", **kwargs):
        super().__init__(**kwargs)
        self.base = base

    def start_requests(self):
        # one identity for the whole account flow: pin it with the session header
        yield scrapy.Request(self.base + "/login", headers=BUYER, callback=self.logged_in)
        # anything unpinned gets a pool session; blocked pages are retried on fresh ones
        for n in range(1, 51):  # pages 1 to 50
            yield scrapy.Request(f"{self.base}/p/{n}")

    def logged_in(self, response):
        yield from self.parse(response)
        for path in ("/account", "/orders"):  # after the login: the session holds its cookie
            yield scrapy.Request(self.base + path, headers=BUYER)

    def parse(self, response):
        yield {"url": response.url, "session": response.headers.get("X-Session-Id", b"").decode(),
               "retries": response.headers.get("X-Session-Retries", b"0").decode()}
