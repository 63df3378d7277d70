import os
import sys

# The command line owns its process: let Numba's OpenMP threads sleep between parallel
# regions (spin-waiting made the kernels 10-20x slower on a shared machine), unless the
# user chose otherwise.  Set before Numba loads; the library itself never does this.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import main  # noqa: E402

sys.exit(main())
