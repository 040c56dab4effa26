"""``python -m pipeline.android``: see :mod:`pipeline.android.runner`."""
from absl import app

from pipeline.android import runner

if __name__ == "__main__":
    app.run(runner.main, flags_parser=runner.parse_argv)
