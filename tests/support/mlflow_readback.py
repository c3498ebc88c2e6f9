"""Reads an MLflow file store back through MlflowClient and prints it as JSON, for
tests/export_mlflow.rs: every active experiment but Default, with its runs, params, tags and the
full history of every metric."""
import json
import math
import os
import sys

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
from mlflow.tracking import MlflowClient  # noqa: E402



def num(v):
    """Values as Python's repr (shortest round-trip text, "nan" and "inf" included): the test
    parses them exactly, which its JSON parser does not guarantee for numbers."""
    return repr(float(v))


store = sys.argv[1]
client = MlflowClient(tracking_uri="file://" + os.path.abspath(store))
out = []
for exp in client.search_experiments():
    if exp.name == "Default":
        continue
    runs = []
    for run in client.search_runs([exp.experiment_id], max_results=50000):
        metrics = {}
        for key in run.data.metrics:
            history = client.get_metric_history(run.info.run_id, key)
            metrics[key] = [[m.step, num(m.value), m.timestamp] for m in sorted(history, key=lambda m: m.step)]
        runs.append(
            {
                "run_id": run.info.run_id,
                "run_name": run.info.run_name,
                "status": run.info.status,
                "start_time": run.info.start_time,
                "end_time": run.info.end_time,
                "params": run.data.params,
                "tags": {k: v for k, v in run.data.tags.items()},
                "metrics": metrics,
            }
        )
    out.append({"experiment_id": exp.experiment_id, "name": exp.name, "runs": runs})
print(json.dumps(out, allow_nan=False))
