-- wrk script: POST the body in $BENCH_BODY (JSON) with a JSON content type.
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
