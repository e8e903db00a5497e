"""The WSGI application, loaded and warmed before the first request.

Once Django is set up, every URL pattern and view module is imported and the loaded objects are
moved out of the garbage collector's sight (`gc.freeze`): a full collection then walks only what
requests create, not the ~100,000 objects of Django, DRF and our modules. Unfrozen, such a
collection stopped every thread of a gunicorn worker for 70-230 ms on the 2-core machine, the
largest part of the annotation benchmark's p99 (benchmarks/bench_annotation.py).
"""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()


def warm_up() -> None:
    """Import what the first requests would: every URLconf and the views it names."""
    from django.urls import get_resolver

    get_resolver().reverse_dict  # noqa: B018 - populating it imports every view module


warm_up()
gc.collect()
gc.freeze()
