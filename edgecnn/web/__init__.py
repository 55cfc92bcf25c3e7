"""Apps beyond Python: the same artifacts in a browser (onnxruntime-web) and in Node (onnxruntime-node).

``npm`` (Node, npm, Chromium, the pinned npm install in edgecnn's cache), ``server`` (local HTTP server with the
cross-origin isolation headers), ``app`` (``make_web_app``, ``check_web``), ``runners`` (self-test in Node and in
headless Chromium, judged by ``edgecnn.runtime.selftest.judge``; latency in the browser). See docs/WEB.md.
"""
