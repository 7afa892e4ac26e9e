"""The parts of ``bench/judge_eval.py``, split along its seams: ``data`` (data sets, embeddings, the pair
table) -> ``protocol`` (leave-one-dataset-out splits, fitted judges, headline scores) -> ``corpus`` (our
corpus's figures and effect) and ``cost`` (latency, sizes) -> ``report`` (docs/judge_results.md). Imports go
that one way; the script keeps the command line, shipping the weights and the JSON report."""
