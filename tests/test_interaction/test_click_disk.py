"""TV8: the click disk of both reference codes (RITM disks, official inner
radius 5) covers 81 px inside the image and 26 px at a corner."""
import numpy as np

from interformer.interaction import (
    REF_DEFINITE_FG,
    add_click_disk,
    new_reference_label,
)


def ritm_disk(shape, y, x, radius=5):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (yy - y)**2 + (xx - x)**2 <= radius**2


def test_tv8_disk_sizes():
    for (y, x), size in (((10, 10), 81), ((0, 0), 26)):
        ref = add_click_disk(new_reference_label(21, 21), y, x, True)
        disk = ref == REF_DEFINITE_FG
        assert disk.sum() == size
        np.testing.assert_array_equal(disk, ritm_disk((21, 21), y, x))
