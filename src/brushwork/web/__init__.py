"""``brushwork serve``: a local web studio (FastAPI) over the method registry, with an HTTP API scripts
can use, live progress for optimization jobs and in-browser inference (onnxruntime-web).

Needs ``pip install 'brushwork[web]'``; :func:`brushwork.web.app.create_app` builds the application.
"""
