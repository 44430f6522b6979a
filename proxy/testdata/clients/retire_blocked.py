# A Scrapy downloader middleware: when a page is a block that no proxy rule
# can see, retire the proxy session that served it (through the proxy's own
# host, http://sessionproxy/) and send the request again, on another session.
# Enable it with DOWNLOADER_MIDDLEWARES = {"retire_blocked.RetireBlockedSessions": 950}.
import os
import urllib.request


class RetireBlockedSessions:
    MARKERS = (b"Please verify you are a human",)  # what your block pages say
    MAX_TRIES = 3

    def __init__(self):
        proxy = os.environ.get("http_proxy") or os.environ.get("HTTP_PROXY") or "http://127.0.0.1:8080"
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy}))

    def process_response(self, request, response, spider):
        session = response.headers.get("X-Session-Id", b"").decode()
        tries = request.meta.get("block_tries", 0)
        if not session or tries >= self.MAX_TRIES or not any(m in response.body for m in self.MARKERS):
            return response
        retire = urllib.request.Request(f"http://sessionproxy/sessions/{session}/retire", method="POST")
        self.opener.open(retire, timeout=10).close()
        spider.logger.info("retired session %s: %s is a block page", session, response.url)
        return request.replace(dont_filter=True, meta={**request.meta, "block_tries": tries + 1})
