"""A Graph change-notification endpoint as an Azure Function (Python v2 programming model).

The handshake is answered at once; a notification POST is verified and decrypted, its items
written to a storage queue (processed by another function, off the request), and answered 202.
Settings: app settings (environment variables) as in ../settings.py: MSGRAPH_NOTIFY_KEY (the
key file deployed with the app, or mounted from Key Vault), MSGRAPH_NOTIFY_KEY_PASSWORD,
MSGRAPH_NOTIFY_CERT_ID, MSGRAPH_NOTIFY_APP_ID, MSGRAPH_NOTIFY_CLIENT_STATE (and, for tests,
MSGRAPH_NOTIFY_CERT and MSGRAPH_NOTIFY_JWKS).
"""

import json
import os
from urllib.parse import urlsplit

import azure.functions as func

from msgraph_notify import Error, KeyRing, Receiver, SigningKeys


def receiver_from_env() -> Receiver:
    env = os.environ
    keys = KeyRing()
    keys.add(env["MSGRAPH_NOTIFY_CERT_ID"], env["MSGRAPH_NOTIFY_KEY"],
             password=env.get("MSGRAPH_NOTIFY_KEY_PASSWORD"), certificate=env.get("MSGRAPH_NOTIFY_CERT"))
    # Microsoft's token signing keys, fetched now and refreshed in the background (a fixed JWKS
    # file in tests).
    jwks = env.get("MSGRAPH_NOTIFY_JWKS")
    signing_keys = SigningKeys.from_jwks(open(jwks, "rb").read()) if jwks else SigningKeys.fetch()
    return Receiver(keys, [env["MSGRAPH_NOTIFY_APP_ID"]],
                    client_state=env["MSGRAPH_NOTIFY_CLIENT_STATE"], signing_keys=signing_keys)


app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
receiver = receiver_from_env()  # once per worker process, shared by invocations


@app.route(route="notifications", methods=["POST"])
@app.queue_output(arg_name="out", queue_name="graph-notifications", connection="AzureWebJobsStorage")
def notifications(req: func.HttpRequest, out: func.Out[list]) -> func.HttpResponse:
    try:
        reply = receiver.receive(req.get_body(), urlsplit(req.url).query or None)
    except Error as e:
        return func.HttpResponse(str(e), status_code=400, mimetype="text/plain")
    if reply.handshake is not None:
        return func.HttpResponse(reply.handshake, status_code=200, mimetype="text/plain")
    out.set([json.dumps(item.to_dict()) for item in reply.items])
    return func.HttpResponse(status_code=202)


@app.queue_trigger(arg_name="msg", queue_name="graph-notifications", connection="AzureWebJobsStorage")
def process(msg: func.QueueMessage) -> None:
    line = json.loads(msg.get_body())
    if line["status"] == "decrypted":
        print(line["resourceKind"], line["data"].get("id"))  # your work on the item
