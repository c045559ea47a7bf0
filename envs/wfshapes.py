"""Synthetic WfFormat instances shaped like the nine WfCommons recipe families.

WfCommons publishes real scientific-workflow traces and recipes that generate
more of them; their DAGs are much larger and wider than the LLM-app templates
(40 to thousands of tasks, fan-outs of dozens, joins of every branch). These
generators reproduce each family's stage structure (who feeds whom, where the
fan-outs and joins are) at a chosen size, with file sizes and runtimes drawn
from a seeded RNG, so the environment can be exercised on real-size DAGs
without downloading instances. They are shapes, not calibrated workloads.

    python -m envs.wfshapes --family montage --tasks 120 --out montage-120.json
    python -m envs.wfshapes --all --tasks 40 120 250 --out-dir wf/   # every family at three sizes

The files load with `envs.workflow_io.load_workflows` (schema 1.5,
`workflow.specification` + `workflow.execution`).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from envs.files import atomic_write_json


class _Dag:
    """Tasks added stage by stage; each task writes one file its children read."""

    def __init__(self, rng):
        self.rng = rng
        self.tasks: list[dict] = []

    def add(self, stage: str, parents=()) -> int:
        i = len(self.tasks)
        self.tasks.append({"name": f"{stage}_{i:05d}", "stage": stage, "parents": sorted(set(parents))})
        return i

    def stage(self, name: str, k: int, parents=()) -> list[int]:
        """k parallel tasks of one stage, each reading `parents`."""
        return [self.add(name, parents) for _ in range(k)]


def _split(total: int, parts: int) -> list[int]:
    """`total` as `parts` near-equal positive integers."""
    base, extra = divmod(max(total, parts), parts)
    return [base + (j < extra) for j in range(parts)]


# Each family: n (the requested task count) -> a _Dag. The fixed stages are counted, the parallel
# stages take what is left, so the result lands within a few tasks of n.

def montage(d: _Dag, n: int):
    k = max(2, (n - 6) // 3)  # k projections, k + r overlap fits, k background corrections, 6 fixed
    proj = d.stage("mProject", k)
    n_diff = max(k, n - 2 * k - 6)
    diffs = [d.add("mDiffFit", (proj[j % k], proj[(j + 1 + j // k) % k])) for j in range(n_diff)]  # overlapping pairs
    concat = d.add("mConcatFit", diffs)
    bg = d.add("mBgModel", [concat])
    back = [d.add("mBackground", (bg, proj[j])) for j in range(k)]
    tbl = d.add("mImgtbl", back)
    add = d.add("mAdd", [tbl] + back)
    shrink = d.add("mShrink", [add])
    d.add("mViewer", [shrink])


def epigenomics(d: _Dag, n: int):
    lanes = max(1, n // 60)
    per_lane = _split(n - 3, lanes)
    merges = []
    for cnt in per_lane:
        chunks = max(1, (cnt - 3) // 4)
        split = d.add("fastqSplit")
        maps = []
        for _ in range(chunks):
            a = d.add("filterContams", [split])
            b = d.add("sol2sanger", [a])
            c = d.add("fast2bfq", [b])
            maps.append(d.add("map", [c]))
        merges.append(d.add("mapMerge", maps))
    top = d.add("mapMerge", merges)
    idx = d.add("maqIndex", [top])
    d.add("pileup", [idx])


def soykb(d: _Dag, n: int):
    chain = ("alignment_to_reference", "sort_sam", "dedup", "add_replace", "realign_target_creator",
             "indel_realign", "haplotype_caller")
    samples = max(1, (n - 6) * 3 // (4 * len(chain)))  # about three quarters of the tasks in per-sample chains
    callers = []
    for _ in range(samples):
        prev = []
        for st in chain:
            prev = [d.add(st, prev)]
        callers.append(prev[0])
    merged = d.add("merge_gcvf", callers)
    genos = d.stage("genotype_gvcfs", max(1, n - len(d.tasks) - 5), [merged])  # one per chromosome
    comb = d.add("combine_variants", genos)
    for kind in ("snp", "indel"):
        d.add(f"filtering_{kind}", [d.add(f"select_variants_{kind}", [comb])])


def blast(d: _Dag, n: int):
    split = d.add("split_fasta")
    work = d.stage("blastall", max(1, n - 3), [split])
    d.add("cat_blast", work)
    d.add("cat", work)


def bwa(d: _Dag, n: int):
    reduce_ = d.add("fastq_reduce")
    index = d.add("bwa_index")
    work = d.stage("bwa", max(1, n - 4), [reduce_, index])
    cat = d.add("cat_bwa", work)
    d.add("cat", [cat])


def srasearch(d: _Dag, n: int):
    build = d.add("bowtie2-build")
    k = max(1, (n - 2) // 2)
    dumps = d.stage("fasterq-dump", k)
    aligns = [d.add("bowtie2", (build, dumps[j])) for j in range(k)]
    d.add("merge", aligns)


def cycles(d: _Dag, n: int):
    k = max(1, (n - 3) // 3)
    base = d.stage("baseline_cycles", k)
    runs = [d.add("cycles", [base[j]]) for j in range(k)]
    parse = [d.add("fertilizer_increase_output_parser", (base[j], runs[j])) for j in range(k)]
    summary = d.add("cycles_output_summary", runs)
    fsum = d.add("cycles_fertilizer_increase_output_summary", parse)
    d.add("cycles_plots", (summary, fsum))


def seismology(d: _Dag, n: int):
    work = d.stage("sG1IterDecon", max(1, n - 1))
    d.add("wrapper_siftSTFByMisfit", work)


def genome_1000(d: _Dag, n: int):
    chroms = max(1, n // 50)
    for cnt in _split(n, chroms):
        k = max(1, (cnt - 2) // 3)  # individuals, mutation_overlap, frequency ~ k each
        ind = d.stage("individuals", k)
        merge = d.add("individuals_merge", ind)
        sift = d.add("sifting")
        pops = max(1, k)
        d.stage("mutation_overlap", pops, (merge, sift))
        d.stage("frequency", max(0, cnt - 2 - k - pops), (merge, sift))


FAMILIES = {"montage": montage, "epigenomics": epigenomics, "soykb": soykb, "blast": blast, "bwa": bwa,
            "srasearch": srasearch, "cycles": cycles, "seismology": seismology, "1000genome": genome_1000}


def make_instance(family: str, n_tasks: int, seed: int = 0) -> dict:
    """A WfFormat 1.5 document of about `n_tasks` tasks shaped like `family`."""
    if family not in FAMILIES:
        raise ValueError(f"family: unknown {family!r} (choose from {sorted(FAMILIES)})")
    if not isinstance(n_tasks, int) or n_tasks < 4:
        raise ValueError(f"n_tasks: must be an integer >= 4, got {n_tasks!r}")
    rng = np.random.default_rng([seed, n_tasks, sorted(FAMILIES).index(family)])
    d = _Dag(rng)
    FAMILIES[family](d, n_tasks)
    children: dict[int, list[int]] = {i: [] for i in range(len(d.tasks))}
    for i, t in enumerate(d.tasks):
        for p in t["parents"]:
            children[p].append(i)
    files, spec_tasks, exec_tasks = [], [], []
    for i, t in enumerate(d.tasks):
        out_id, in_id = f"{t['name']}.out", f"{t['name']}.in"
        files.append({"id": out_id, "sizeInBytes": int(rng.lognormal(np.log(1200), 0.8))})
        ins = [f"{d.tasks[p]['name']}.out" for p in t["parents"]]
        if not t["parents"] or rng.random() < 0.3:  # roots, and some others, read a file of their own
            files.append({"id": in_id, "sizeInBytes": int(rng.lognormal(np.log(4000), 1.0))})
            ins.append(in_id)
        spec_tasks.append({"name": t["stage"], "id": t["name"], "parents": [d.tasks[p]["name"] for p in t["parents"]],
                           "children": [d.tasks[c]["name"] for c in children[i]], "inputFiles": ins,
                           "outputFiles": [out_id]})
        exec_tasks.append({"id": t["name"], "runtimeInSeconds": round(float(rng.lognormal(np.log(20), 0.7)), 3)})
    return {"name": f"{family}-{len(d.tasks)}", "description": f"synthetic {family}-shaped DAG (jaxsched envs.wfshapes)",
            "schemaVersion": "1.5",
            "workflow": {"specification": {"tasks": spec_tasks, "files": files},
                         "execution": {"makespanInSeconds": 0.0, "tasks": exec_tasks}}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m envs.wfshapes", description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", choices=sorted(FAMILIES), help="one family (or --all)")
    ap.add_argument("--all", action="store_true", help="every family")
    ap.add_argument("--tasks", type=int, nargs="+", default=[120], help="task counts (one file per count)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="output file (one family, one size)")
    ap.add_argument("--out-dir", help="output directory: <family>-<tasks>.json per instance")
    a = ap.parse_args(argv)
    families = sorted(FAMILIES) if a.all else [a.family] if a.family else ap.error("give --family or --all")
    jobs = [(f, n) for f in families for n in a.tasks]
    if a.out and len(jobs) > 1:
        ap.error("--out takes one family and one size; use --out-dir for more")
    if not (a.out or a.out_dir):
        ap.error("give --out or --out-dir")
    try:
        for f, n in jobs:
            doc = make_instance(f, n, a.seed)
            path = a.out or os.path.join(a.out_dir, f"{f}-{n}.json")
            if a.out_dir:
                os.makedirs(a.out_dir, exist_ok=True)
            atomic_write_json(path, doc)
            print(f"{path}: {len(doc['workflow']['specification']['tasks'])} tasks")
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
