"""NumPy as the oracle for src/npy.c: reads the array cfx wrote, writes arrays in other types."""
import sys

import numpy as np

src, out = sys.argv[1], sys.argv[2]
a = np.load(src)
assert a.dtype == np.float32 and a.shape == (2, 3, 4), (a.dtype, a.shape)
assert np.array_equal(a.ravel(), np.arange(24, dtype=np.float32) * 0.5 - 3)
v = np.array([[0, 1, 2], [3, 4, 250]])
np.save(f"{out}/f8.npy", v.astype(np.float64))
np.save(f"{out}/u1.npy", v.astype(np.uint8))
np.save(f"{out}/i8.npy", v.astype(np.int64))
np.save(f"{out}/i4.npy", v.astype(np.int32))
np.lib.format.write_array(open(f"{out}/f4v2.npy", "wb"), v.astype(np.float32), version=(2, 0))
np.save(f"{out}/fortran.npy", np.asfortranarray(v.astype(np.float32)))
np.save(f"{out}/c16.npy", v.astype(np.complex128))
