"""DeepPrune vs plain cons@16 on the embedded vLLM server: wall time, server tokens, agreement, cancel latency.

    python bench/live_vllm.py [--json bench/out/live_vllm.json] [--base-url URL] [--policy paper] ...

Same as ``deepprune bench live``; prints the figures and writes the JSON report.
"""

import sys

from deepprune_agents.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "live", *sys.argv[1:]]))
