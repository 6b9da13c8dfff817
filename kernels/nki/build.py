"""Compile mnemo's NKI matmul kernels into a NEFF directory with a
manifest.json that backend/neuron reads (see backend/neuron/manifest.go).

    python3 build.py --out DIR --target trn2|trn3 --shapes NxK[,NxK...] --buckets 1,8,...

Needs the Neuron SDK >= 2.28 (the `nki` package and neuronx-cc). Without it
the script says so and exits with status 3, having written nothing. NOT RUN
with the SDK: the compile path below follows the documented standalone
flow (NKI_ARTIFACTS_DIR keeps kernel.neff; inputs are named after the kernel
parameters, the output `output_0`) and is unverified.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

NO_SDK = 3


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="NEFF directory to write")
    p.add_argument("--target", choices=["trn2", "trn3"], default="trn2")
    p.add_argument("--shapes", default="512x512", help="weight shapes NxK, comma-separated")
    p.add_argument("--buckets", default="1,8,64,128", help="M buckets, ascending")
    return p.parse_args()


def compile_one(kern, args, workdir):
    """Traces and compiles kern on example inputs; returns kernel.neff's path."""
    os.environ["NKI_ARTIFACTS_DIR"] = workdir
    kern(*args)  # on a Trainium host this compiles and runs once
    path = os.path.join(workdir, "kernel.neff")
    if not os.path.exists(path):
        raise RuntimeError(f"no kernel.neff in {workdir}")
    return path


def main():
    a = parse_args()
    try:
        import nki  # noqa: F401
    except ImportError:
        print("build.py: the Neuron SDK (the `nki` package, SDK >= 2.28) is not installed here;\n"
              "run `make neff` on a Trainium host with the Neuron SDK. Nothing was written.", file=sys.stderr)
        return NO_SDK
    import numpy as np

    import fp8_matmul
    import mx_matmul

    os.environ.setdefault("NEURON_PLATFORM_TARGET_OVERRIDE", a.target)
    os.makedirs(a.out, exist_ok=True)
    buckets = [int(b) for b in a.buckets.split(",")]
    if a.target == "trn2":
        mod, weights, make_w = fp8_matmul, "fp8", lambda n, k: fp8_matmul.trn2_layout(
            fp8_matmul.fp8_host(np.ones((n, k), np.float32)), n, k)
    else:
        mod, weights, make_w = mx_matmul, "mxfp4", lambda n, k: mx_matmul.trn3_layout(
            bytes(n * k // 32 * 17), n, k)
    kern = mod.kernel()
    programs = []
    for shape in a.shapes.split(","):
        n, k = (int(v) for v in shape.split("x"))
        for m in buckets:
            name = f"matmul_{weights}_m{m}_n{n}_k{k}.neff"
            with tempfile.TemporaryDirectory() as work:
                neff = compile_one(kern, (np.zeros((m, k), np.float32), make_w(n, k)), work)
                shutil.copy(neff, os.path.join(a.out, name))
            programs.append({
                "spec": {"op": "matmul", "m": m, "n": n, "k": k, "weights": weights},
                "neff": name, "inputs": ["x", "w"], "outputs": ["output_0"],
                "weight_layout": mod.LAYOUT,
            })
    manifest = {"version": 1, "target": a.target, "buckets": buckets, "programs": programs}
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent="\t")
        f.write("\n")
    print(f"build.py: wrote {len(programs)} NEFFs and manifest.json to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
