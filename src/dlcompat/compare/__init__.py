"""What changed between two runs, and whether each change exceeds the measured noise (`dlcompat compare`).

Two runs (two versions of a framework or converter, or another seed) are matched measurement by
measurement on their identity: dataset, model, framework, target, variant, metric, and the seed when
both runs used the same seeds. When they used different seeds, the seed is set aside and each
identity's values are pooled over seeds (their mean is compared; their spread is the noise where both
runs have several).

Every matched pair ends up as one `Change`:

- `value`: both measured, the value differs; `noise.judge` says whether beyond noise (compare/noise.py);
- `unchanged`: the same value (or the same failure with the same error);
- `status`: ok ↔ failed ↔ unavailable, with the error of the side that is not ok (a job that failed as
  a whole counts as the status of every figure it would have measured);
- `error`: failed in both, with a different error;
- `appeared` / `disappeared`: measured by one run only, with the error that kept the other from it
  when a job upstream of the cell failed (a failed conversion skips its evaluation).

The layer has five modules: `changes` (matching two runs: `compare_runs`), `noise` (each metric's noise
rule), `floor` (the measured noise floor of a derived model, from its artifact's localisation rows: the rule
of its logit differences where both runs localised it), `document` (the comparison as the report's
sections, written as `compare.html` and `compare.md`) and `text` (a change in words, and the lines
`dlcompat compare` prints). It uses the report's rows, formatting and renderers; the report never imports it.
"""
