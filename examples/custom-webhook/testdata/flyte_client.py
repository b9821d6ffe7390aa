# The client of Flyte's tutorial "Webhook with FastAPI", step 4
# (../shared/reference/flyte-webhook-fastapi.txt), copied as it is with one
# change: the endpoint, which the tutorial hard-codes to its placeholder
# "https://your-webhook-url.flyte.org", is read from WEBHOOK_ENDPOINT. The
# token is read from FLYTE_API_KEY as in the tutorial. The tutorial's text
# lost its indentation; the block under `with` is indented as Python needs.
import httpx
import os

# Obtain your token via 'flyte get api-key' or your auth provider
token = os.getenv("FLYTE_API_KEY")
endpoint = os.environ["WEBHOOK_ENDPOINT"]

headers = {
"Authorization": f"Bearer {token}",
}

with httpx.Client(headers=headers) as client:
    # 1. Verify who you are via the webhook
    me = client.get(f"{endpoint}/me")
    print(f"Authenticated as: {me.json()['name']}")

    # 2. Trigger a task
    payload = {"x": 10, "y": "test"}
    resp = client.post(
    f"{endpoint}/run-task/my-project/development/my-task",
    json=payload
    )
    print(f"Task launched: {resp.json()['url']}")
