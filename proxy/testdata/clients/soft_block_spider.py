"""Scrapy spider for TestScrapyRetiresSoftBlocks (proxy/clients_test.go).

Run as:  python3 -m scrapy runspider soft_block_spider.py -a base=http://127.0.0.1:PORT -O out.json
with PYTHONPATH holding this directory (for retire_blocked.py) and
HTTP_PROXY/http_proxy naming the session proxy. It fetches /soft once,
unpinned; the RetireBlockedSessions middleware handles a block page.
"""

import scrapy


class SoftBlockSpider(scrapy.Spider):
    name = "softblock"
    custom_settings = {
        "COOKIES_ENABLED": False,
        "ROBOTSTXT_OBEY": False,
        "TELNETCONSOLE_ENABLED": False,
        "RETRY_ENABLED": False,
        "HTTPERROR_ALLOW_ALL": True,
        "DOWNLOAD_TIMEOUT": 15,
        "LOG_LEVEL": "INFO",
        "REQUEST_FINGERPRINTER_IMPLEMENTATION": "2.7",
        "DOWNLOADER_MIDDLEWARES": {"retire_blocked.RetireBlockedSessions": 950},
    }

    def __init__(self, base=None, **kwargs):
        super().__init__(**kwargs)
        if not base:
            raise ValueError("spider argument base is required (-a base=http://host:port)")
        self.base = base.rstrip("/")

    def start_requests(self):
        yield scrapy.Request(self.base + "/soft")

    def parse(self, response):
        yield {
            "path": response.url[len(self.base):],
            "status": response.status,
            "session": response.headers.get("X-Session-Id", b"").decode(),
            "body": response.text[:200],
            "tries": response.request.meta.get("block_tries", 0),
        }
