"""Generate peer reference values for ADH synthetic control (run with /work/peers/bin/python).

Writes tests/reference/data/adh_reference.json: on the Basque data with the Abadie &
Gardeazabal (2003) specification of the Synth R package example (PROVENANCE.md),

- the published donor weights (Cataluna 0.851, Madrid 0.149) and the pre-period MSPE
  of gdpcap over 1960-1969 that they reach (computed here from the data);
- pysyncon 1.7's fit with Nelder-Mead from equal V (its documented Basque example) and
  from its regression ("ols") start: weights, V and the MSPE reached.

Usage: /work/peers/bin/python tests/reference/generate_adh_reference.py
"""

from __future__ import annotations

import json
import sys
import time
import types
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd


def _import_pysyncon():
    """Import pysyncon; the peers' matplotlib is built for NumPy 1 and fails to import
    under NumPy 2, and pysyncon imports pyplot only to draw, so a stub stands in for it."""
    try:
        import matplotlib.pyplot  # noqa: F401
    except (ImportError, AttributeError):
        for name in [m for m in sys.modules if m.startswith("matplotlib")]:
            del sys.modules[name]
        for name in ("matplotlib", "matplotlib.pyplot"):
            sys.modules[name] = types.ModuleType(name)
    from pysyncon import Dataprep, Synth

    return Dataprep, Synth


Dataprep, Synth = _import_pysyncon()

HERE = Path(__file__).parent
BASQUE = Path("/work/shared/data/reference/basque.csv")

SCHOOL = ["school.illit", "school.prim", "school.med", "school.high", "school.post.high"]
SECTORS = [
    "sec.agriculture",
    "sec.energy",
    "sec.industry",
    "sec.construction",
    "sec.services.venta",
    "sec.services.nonventa",
]
TREATED = "Basque Country (Pais Vasco)"


def main() -> None:
    df = pd.read_csv(BASQUE)
    donors = sorted(set(df["regionname"]) - {TREATED, "Spain (Espana)"})
    prep = Dataprep(
        foo=df,
        predictors=[*SCHOOL, "invest"],
        predictors_op="mean",
        time_predictors_prior=range(1964, 1970),
        special_predictors=[
            ("gdpcap", range(1960, 1970), "mean"),
            *[(s, range(1961, 1970, 2), "mean") for s in SECTORS],
            ("popdens", [1969], "mean"),
        ],
        dependent="gdpcap",
        unit_variable="regionname",
        time_variable="year",
        treatment_identifier=TREATED,
        controls_identifier=donors,
        time_optimize_ssr=range(1960, 1970),
    )
    wide = df.pivot(index="year", columns="regionname", values="gdpcap")
    z0 = wide.loc[1960:1969, donors].to_numpy()
    z1 = wide.loc[1960:1969, TREATED].to_numpy()

    published = pd.Series(0.0, index=donors)
    published["Cataluna"] = 0.851
    published["Madrid (Comunidad De)"] = 0.149
    out: dict = {
        "source": "Basque data (PROVENANCE.md); pysyncon " + version("pysyncon"),
        "donors": donors,
        "published": {
            "source": "Abadie & Gardeazabal (2003); Synth R package example",
            "weights": published.to_dict(),
            "mspe": float(np.mean((z1 - z0 @ published.to_numpy()) ** 2)),
        },
    }
    for start in ("equal", "ols"):
        synth = Synth()
        t0 = time.perf_counter()
        synth.fit(dataprep=prep, optim_method="Nelder-Mead", optim_initial=start)
        seconds = time.perf_counter() - t0
        weights = pd.Series(synth.W, index=list(synth.W_names))
        out[f"pysyncon_nelder_mead_{start}"] = {
            "source": f"pysyncon {version('pysyncon')} Synth.fit(optim_method='Nelder-Mead', "
            f"optim_initial='{start}')",
            "weights": weights.reindex(donors).to_dict(),
            "v": [float(v) for v in np.asarray(synth.V).ravel()],
            "mspe": float(np.mean((z1 - z0 @ weights.reindex(donors).to_numpy()) ** 2)),
            "loss_v": float(synth.loss_V),
            "seconds": seconds,
        }
    path = HERE / "data" / "adh_reference.json"
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
