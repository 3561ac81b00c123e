"""Production settings plus one trivial view, for benchmark baselines only.

The view lives here rather than in config/urls.py so production never exposes it.
"""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.support.urls"
