"""metrics_np.py DIR THREADS REPEATS - FID and KID of DIR/a.npy and DIR/b.npy as pytorch-fid and
torch-fidelity compute them (NumPy and SciPy on OpenBLAS), for bench/metrics.sh. Prints lines
"name value": medians in seconds of FID (pytorch-fid's calculate_activation_statistics for both
sets, numpy.mean and numpy.cov, then calculate_frechet_distance with scipy.linalg.sqrtm), of the
statistics of one set, of the square root alone, of KID (torch-fidelity's kid_features_to_metric:
100 subsets of 50, polynomial kernel, unbiased mmd2), and the values. The thread count is set
before NumPy loads OpenBLAS."""
import os
import sys

os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = sys.argv[2]

import time  # noqa: E402

import numpy as np  # noqa: E402
from scipy import linalg  # noqa: E402


def stats(act):  # pytorch-fid: calculate_activation_statistics after the network
    return np.mean(act, axis=0), np.cov(act, rowvar=False)


def sqrt_part(sigma1, sigma2):
    covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return np.trace(covmean)


def frechet(mu1, sigma1, mu2, sigma2):  # pytorch-fid: calculate_frechet_distance
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    diff = mu1 - mu2
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * sqrt_part(sigma1, sigma2)


def mmd2(k_xx, k_xy, k_yy):  # torch-fidelity: mmd2(..., mmd_est="unbiased")
    m = k_xx.shape[0]
    kt_xx_sum = (k_xx.sum(axis=1) - np.diagonal(k_xx)).sum()
    kt_yy_sum = (k_yy.sum(axis=1) - np.diagonal(k_yy)).sum()
    return (kt_xx_sum + kt_yy_sum) / (m * (m - 1)) - 2 * k_xy.sum(axis=0).sum() / (m * m)


def kid(f1, f2, subsets=100, size=50, seed=2020):  # torch-fidelity: kid_features_to_metric
    def kernel(x, y):
        return (np.matmul(x, y.T) * (1.0 / x.shape[1]) + 1) ** 3

    rng = np.random.RandomState(seed)
    mmds = np.zeros(subsets)
    for i in range(subsets):
        a = f1[rng.choice(len(f1), size, replace=False)]
        b = f2[rng.choice(len(f2), size, replace=False)]
        mmds[i] = mmd2(kernel(a, a), kernel(a, b), kernel(b, b))
    return float(np.mean(mmds)), float(np.std(mmds))


def main():
    d, repeats = sys.argv[1], int(sys.argv[3])
    a, b = np.load(d + "/a.npy"), np.load(d + "/b.npy")
    times = {k: [] for k in ("fid_s", "stats_s", "trace_s", "kid_s")}
    for _ in range(repeats):
        t0 = time.perf_counter()
        mu1, s1 = stats(a)
        mu2, s2 = stats(b)
        fid = frechet(mu1, s1, mu2, s2)
        times["fid_s"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        stats(a)
        times["stats_s"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        tr = sqrt_part(s1, s2)
        times["trace_s"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        kv, ks = kid(a, b)
        times["kid_s"].append(time.perf_counter() - t0)
    for k, v in times.items():
        print(k, "%.4f" % float(np.median(v)))
    print("fid %.10g\ntrace %.10g\nkid %.10g\nkid_std %.10g" % (fid, tr, kv, ks))


main()
