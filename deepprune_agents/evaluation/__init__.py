"""Evaluation: the replay server (recorded traces over real HTTP), the offline simulator, the baselines
(cons@N, ESC, DeepConf-online) and the bootstrap harness behind ``deepprune eval replay``; the live
benchmark against a vLLM server is ``live_bench``.

Nothing is imported here eagerly: the server pulls in Starlette/uvicorn, the harness numpy/matplotlib.
"""
