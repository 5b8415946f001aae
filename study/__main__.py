"""``python -m study --smoke-test``: one tiny trial on the built-in digits, its spectrum printed.

``python -m study --config trial.yaml`` runs one trial from a flat YAML dict (the keys of
study.config) and prints its spectra as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import logging

from study.trial import run_trial

SMOKE_CONFIG = {"width": 10, "n_steps": 60, "n_replicas": 3, "batch_size": 30, "delays": 2,
                "rank": 6, "n_threads": 1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m study", description=__doc__)
    parser.add_argument("--smoke-test", action="store_true", help="one tiny trial (seconds, CPU)")
    parser.add_argument("--config", help="YAML file holding one flat trial config")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if arguments.config:
        import yaml

        with open(arguments.config) as stream:
            config = yaml.safe_load(stream) or {}
    elif arguments.smoke_test:
        config = SMOKE_CONFIG
    else:
        parser.error("give --smoke-test or --config FILE")
    result = run_trial(config)
    print(json.dumps({"status": result.status, "diverged_step": result.diverged_step,
                      "final_train_loss": result.final_train_loss,
                      "final_test_accuracy": result.final_test_accuracy,
                      "wall_time_s": round(result.wall_time_s, 3), "device": result.device}))
    for row in result.spectrum_rows(trial_id="smoke" if arguments.smoke_test else "cli", condition="cli"):
        print(json.dumps(row))
    return 0 if result.status == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
