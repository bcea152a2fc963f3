"""The HTTP API's routes, one module per group: health, model, translate (video), gloss.

`slt_serve.api.create_app` puts them together around one `Service` (`state`); the
request and response models and the JSON error body live in `schema`.
"""
