"""Images as Gato patch tokens: 16x16 non-overlapping patches in raster order."""

import numpy as np

PATCH_SIZE = 16
POS_BUCKETS = 128   # row/column position encodings quantise [0, 1) into this many buckets


def patch_intervals(n: int) -> np.ndarray:
    """(n, 2) int64 bucket intervals [lo, hi) of n equal slices of [0, 1).

    Slice i covers [i/n, (i+1)/n) -> [floor(i/n*128), floor((i+1)/n*128)), computed in integers so there is no
    float rounding; hi is at least lo + 1 so an image with more than 128 rows still gives non-empty intervals.
    """
    i = np.arange(n, dtype=np.int64)
    lo = i * POS_BUCKETS // n
    hi = np.maximum((i + 1) * POS_BUCKETS // n, lo + 1)
    return np.stack([lo, hi], axis=1)


def image_to_patches(image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 (H, W, 3) image -> (patches float32 (P, 3, 16, 16), rows (P, 2), cols (P, 2)).

    Patches are in raster order (left to right, then top to bottom), pixels scaled to [-1, 1] and divided by
    sqrt(16) = 4 as in Gato. rows/cols are the patch's quantised position intervals (see patch_intervals).
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'image_to_patches: expected a uint8 (H, W, 3) RGB image, got {image.dtype} {image.shape}')
    height, width, _ = image.shape
    if height == 0 or width == 0 or height % PATCH_SIZE or width % PATCH_SIZE:
        raise ValueError(f'image_to_patches: image size {height}x{width} must be a positive multiple of '
                         f'{PATCH_SIZE} in both dimensions (resize or crop it first)')
    rows, cols = height // PATCH_SIZE, width // PATCH_SIZE
    scaled = (image.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)) / np.float32(4.0)
    # (H, W, C) -> (rows, 16, cols, 16, C) -> (rows, cols, C, 16, 16) -> (P, C, 16, 16)
    patches = scaled.reshape(rows, PATCH_SIZE, cols, PATCH_SIZE, 3).transpose(0, 2, 4, 1, 3)
    patches = np.ascontiguousarray(patches.reshape(rows * cols, 3, PATCH_SIZE, PATCH_SIZE))
    row_iv, col_iv = patch_intervals(rows), patch_intervals(cols)
    return patches, np.repeat(row_iv, cols, axis=0), np.tile(col_iv, (rows, 1))
