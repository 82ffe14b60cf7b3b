"""Reference values for evalkit.inference.honest_did (run with /work/peers/bin/python).

Two sources, written to tests/reference/data/honest_reference.json:

1. R HonestDiD's README (asheshrambachan/HonestDiD, README.Rmd, knitr cache in
   README_cache/gfm): the cached chunks hold the inputs (betahat, sigma) and the
   robust intervals at full precision for the Sun-Abraham example (relative
   magnitudes, C-LF, gridPoints=100), and the inputs of the "regressions with
   controls" example whose FLCI intervals the README prints to three significant
   digits. Give the path of a HonestDiD git checkout as the first argument; the
   lazy-load database (.rdx/.rdb) is read with evalkit's R-serialization reader.
2. The PyPI port ``honestdid`` 0.1.1 on a small deterministic example (3 pre, 4
   post periods): conditional (ARP) test inversion for relative magnitudes and the
   FLCI for smoothness.

Usage: /work/peers/bin/python tests/reference/generate_honest_reference.py /path/to/HonestDiD
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[1] / "src"))


def _unserialize(blob: bytes):
    from evalkit.datasets._rdata import _Reader

    reader = _Reader(blob)
    reader.take(2)  # "X\n": XDR binary
    version = reader.int()
    reader.int(), reader.int()
    if version == 3:
        reader.take(reader.int())  # native encoding name
    return reader.item()


def _cached(checkout: Path, chunk: str, name: str):
    """One object from a knitr cache chunk (R lazy-load database)."""
    rev = "HEAD"
    tree = subprocess.run(
        ["git", "-C", str(checkout), "ls-tree", "-r", "--name-only", rev, "README_cache"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    rdx = next(p for p in tree if Path(p).name.startswith(chunk + "_") and p.endswith(".rdx"))

    def show(path: str) -> bytes:
        return subprocess.run(
            ["git", "-C", str(checkout), "show", f"{rev}:{path}"], capture_output=True, check=True
        ).stdout

    index = _unserialize(gzip.decompress(show(rdx)))
    variables = index.values[0]
    names = variables.attributes["names"].values
    offset, length = (int(v) for v in variables.values[names.index(name)].values)
    db = show(rdx[:-1] + "b")
    return _unserialize(zlib.decompress(db[offset + 4 : offset + length]))


def _field(obj, name):
    return obj.values[obj.attributes["names"].values.index(name)]


def r_readme(checkout: Path) -> dict:
    commit = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    sunab = _cached(checkout, "unnamed-chunk-10", "beta_vcv")
    beta = np.asarray(_field(sunab, "beta").values, dtype=float)
    sigma = np.asarray(_field(sunab, "sigma").values, dtype=float).reshape(len(beta), -1)
    res = _cached(checkout, "unnamed-chunk-10", "sensitivity_results")
    orig = _cached(checkout, "unnamed-chunk-10", "original_results")
    controls_b = np.asarray(_cached(checkout, "unnamed-chunk-8", "betahat").values, float)
    controls_s = np.asarray(_cached(checkout, "unnamed-chunk-8", "sigma").values, float)
    return {
        "source": f"R HonestDiD README knitr cache, asheshrambachan/HonestDiD@{commit}",
        "sunab": {
            "beta": beta.tolist(),
            "sigma": sigma.tolist(),
            "n_pre": 10,
            "grid_points": 100,
            "mbar": list(map(float, _field(res, "Mbar").values)),
            "lb": list(map(float, _field(res, "lb").values)),
            "ub": list(map(float, _field(res, "ub").values)),
            "original": [float(_field(orig, "lb").values[0]), float(_field(orig, "ub").values[0])],
        },
        "controls": {
            "beta": controls_b.tolist(),
            "sigma": controls_s.reshape(len(controls_b), -1).tolist(),
            "n_pre": 5,
            # printed in README.md ("Regressions with controls"), 3 significant digits
            "m": [0.0, 0.01, 0.02, 0.03, 0.04, 0.05],
            "lb": [0.0264, 0.0128, 0.00186, -0.00814, -0.0181, -0.0281],
            "ub": [0.0607, 0.0788, 0.0908, 0.101, 0.111, 0.121],
        },
    }


def small_example() -> tuple[np.ndarray, np.ndarray]:
    """A 3-pre, 4-post example with a mild pre-trend and correlated estimates."""
    rng = np.random.default_rng(20240611)
    a = rng.normal(size=(7, 7))
    sigma = (a @ a.T / 7 + np.eye(7)) * 1e-4
    beta = np.array([0.012, -0.004, 0.006, -0.02, -0.045, -0.11, -0.09])
    return beta, sigma


def peer(beta: np.ndarray, sigma: np.ndarray) -> dict:
    import honestdid

    warnings.simplefilter("ignore")
    out: dict = {"source": f"honestdid {honestdid.__version__} (PyPI)"}
    start = time.time()
    rm = honestdid.createSensitivityResults_relativeMagnitudes(
        beta, sigma, 3, 4, method="Conditional", Mbarvec=[0.5, 1.0], gridPoints=200
    )
    out["rm_conditional"] = {
        "grid_points": 200,
        "mbar": rm["Mbar"].tolist(),
        "lb": rm["lb"].tolist(),
        "ub": rm["ub"].tolist(),
    }
    for key, fn, kw in (
        ("rmb_positive", honestdid.computeConditionalCS_DeltaRMB, {"biasDirection": "positive"}),
        (
            "rmm_increasing",
            honestdid.computeConditionalCS_DeltaRMM,
            {"monotonicityDirection": "increasing"},
        ),
    ):
        res = fn(beta, sigma, 3, 4, l_vec=np.eye(4)[0], Mbar=1.0, hybrid_flag="ARP",
                 gridPoints=100, **kw)  # fmt: skip
        accepted = res["grid"][res["accept"] == 1]
        out[key] = {
            "grid_points": 100,
            "mbar": 1.0,
            "lb": float(accepted.min()),
            "ub": float(accepted.max()),
        }
    lavg = np.full(4, 0.25)
    sd = honestdid.createSensitivityResults(
        beta, sigma, 3, 4, method="FLCI", Mvec=[0.0, 0.005, 0.02], l_vec=lavg
    )
    out["sd_flci_average"] = {
        "l_vec": lavg.tolist(),
        "m": sd["M"].tolist(),
        "lb": sd["lb"].tolist(),
        "ub": sd["ub"].tolist(),
    }
    out["seconds"] = round(time.time() - start, 1)
    return out


def main() -> None:
    checkout = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    beta, sigma = small_example()
    data = {"small": {"beta": beta.tolist(), "sigma": sigma.tolist(), "n_pre": 3}}
    data["small"]["peer"] = peer(beta, sigma)
    if checkout is not None:
        data["r_readme"] = r_readme(checkout)
    out = HERE / "data" / "honest_reference.json"
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
