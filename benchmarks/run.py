"""Run distinfer's benchmarks: ``python benchmarks/run.py NAME [NAME...] [options]``.

``python benchmarks/run.py --help`` lists them; ``python benchmarks/run.py NAME --help``
says what one measures and its options. Each writes benchmarks/results/NAME.json.
"""

import os
import sys
from pathlib import Path

# The repository root, not this folder, goes on the path, so the benchmarks import as
# ``benchmarks.*`` (``benchmarks/distributed.py`` must not shadow a top-level module
# of that name); on PYTHONPATH too, for the local Ray's workers, which unpickle the
# benchmarks' actor classes by module name, whatever the current directory.
ROOT = str(Path(__file__).resolve().parent.parent)
sys.path[0] = ROOT
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))

from benchmarks._runner import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
