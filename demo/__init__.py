"""The Gradio demo over `slt_serve`: `slt demo BUNDLE`, or `slt serve BUNDLE --demo-ui`.

Needs the `demo` extra (`pip install "slt-serve[demo]"`); the app is in `demo.app`.
Gradio's usage analytics are switched off here, before `gradio` is imported: the demo
never calls out to the internet (no analytics, no version check, no share link unless
asked for).
"""

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
