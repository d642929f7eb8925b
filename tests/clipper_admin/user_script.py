"""What a user of Clipper's own client writes, run inside the fresh venv: one phase per call.

``python user_script.py INVENTORY PHASE``; prints one JSON object of what each call returned
(or the ClipperException it raised), for the test to check.
"""

from __future__ import annotations

import json
import sys

import requests
from clipper_admin import ClipperConnection, ClipperException

from clipper_deploy.compat.clipper_admin import ClipperDeployContainerManager

inventory, phase = sys.argv[1], sys.argv[2]
results: dict[str, object] = {}


def call(name, func, *args, **kwargs):
    try:
        results[name] = func(*args, **kwargs)
    except ClipperException as exc:
        results[name] = {"raised": str(exc)}


conn = ClipperConnection(ClipperDeployContainerManager(inventory))
if phase == "start-without-netrc":
    call("start_clipper", conn.start_clipper)
elif phase == "setup":
    call("start_clipper", conn.start_clipper)  # idempotent: already running
    call("register_application", conn.register_application, "ca-app", "doubles", "-1.0", 500000)
    call("register_model", conn.register_model, "ca-model", "1", "doubles", labels=["x"])
    call("register_model_2", conn.register_model, "ca-model", "2", "doubles")
    call("link_model_to_app", conn.link_model_to_app, "ca-app", "ca-model")
    call("deploy_model", conn.deploy_model, "ca-model", "3", "doubles", "some/image:1")
elif phase == "use":
    call("connect", conn.connect)
    call("get_all_apps", conn.get_all_apps, verbose=True)
    call("get_app_info", conn.get_app_info, "ca-app")
    call("get_linked_models", conn.get_linked_models, "ca-app")
    call("get_all_models", conn.get_all_models)
    call("get_model_info", conn.get_model_info, "ca-model", "1")
    call("get_all_model_replicas", conn.get_all_model_replicas, verbose=True)
    call("get_model_replica_info", conn.get_model_replica_info, "ca-model", "1", "ca-r1")
    call("get_current_model_version", conn.get_current_model_version, "ca-model")
    call("get_num_replicas", conn.get_num_replicas, "ca-model", "1")
    call("get_query_addr", conn.get_query_addr)
    url = f"http://{conn.get_query_addr()}/ca-app/predict"
    results["predict_v1"] = requests.post(url, json={"input": [1.0, 2.0, 3.0, 4.0]}).json()
    call("set_model_version", conn.set_model_version, "ca-model", "2")
    results["predict_v2"] = requests.post(url, json={"input": [1.0, 2.0, 3.0, 4.0]}).json()
    call("set_num_replicas", conn.set_num_replicas, "ca-model", 3, "2")
    call("unlink_model_from_app", conn.unlink_model_from_app, "ca-app", "ca-model")
    call("get_linked_models_after", conn.get_linked_models, "ca-app")
    results["predict_unlinked"] = requests.post(url, json={"input": [1.0]}).json()
    call("get_clipper_logs", conn.get_clipper_logs, "clipper-logs")
    call("stop_inactive_model_versions", conn.stop_inactive_model_versions, ["ca-model"])
    call("get_all_models_after", conn.get_all_models)
    call("unregister_application", conn.unregister_application, "ca-app")
    call("get_all_apps_after", conn.get_all_apps)
    call("stop_all", conn.stop_all)
print(json.dumps(results, default=str))
