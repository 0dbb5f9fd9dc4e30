"""advx's Jupyter kernel through jupyter_client, as a front end talks to it.

Usage: protocol.py KERNELS_DIR WORKDIR, where KERNELS_DIR holds the
kernelspec `advx kernel install --prefix` wrote (its share/jupyter) and
WORKDIR is the folder the kernel starts in (the repository: the cells name
models/mnist/...). Every check prints one line; the first failure raises.
tests/kernel.rs runs it with the advx binary under test.
"""
import os
import sys
import time

KERNELS, WORKDIR = sys.argv[1], sys.argv[2]
os.environ["JUPYTER_PATH"] = KERNELS
os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")

from jupyter_client.manager import start_new_kernel  # noqa: E402

TIMEOUT = 300


def check(condition, what, detail=""):
    if not condition:
        raise AssertionError(f"{what}: {detail}")
    print(f"ok: {what}", flush=True)


def run(client, code, timeout=TIMEOUT):
    """Executes `code`; returns the reply's content and the IOPub outputs."""
    outputs = []

    def keep(message):
        if message["msg_type"] in ("display_data", "update_display_data", "error", "stream", "execute_result"):
            outputs.append(message)

    reply = client.execute_interactive(code, output_hook=keep, timeout=timeout)
    return reply["content"], outputs


def kinds(outputs):
    return [o["msg_type"] for o in outputs]


def main():
    manager, client = start_new_kernel(kernel_name="advx", cwd=WORKDIR, startup_timeout=120)
    try:
        session_checks(manager, client)
        client = restart_checks(manager, client)
    finally:
        manager.shutdown_kernel(now=False)
    check(not manager.is_alive(), "shutdown ends the kernel's process")


def session_checks(manager, client):
    info = client.kernel_info(reply=True)["content"]
    language = info["language_info"]
    check(language["name"] == "advx" and language["file_extension"] == ".advx", "kernel_info names the language", language)
    check(language["pygments_lexer"] == "advx" and language["mimetype"] == "text/x-advx", "kernel_info's lexer and mimetype", language)

    reply, outputs = run(client, 'model fc100 = onnx "models/mnist/fc100-100-10.onnx"\nlet test = mnist.test[0..200]')
    check(reply["status"] == "ok" and outputs == [], "a binding shows nothing", (reply, kinds(outputs)))
    first = reply["execution_count"]

    reply, outputs = run(client, "show evaluate fc100 on test")
    check(reply["execution_count"] == first + 1, "execution counts go up", reply)
    tables = [o for o in outputs if o["msg_type"] == "display_data" and "<table" in o["content"]["data"].get("text/html", "")]
    check(len(tables) == 1, "evaluate shows an HTML table", kinds(outputs))
    data = tables[0]["content"]["data"]
    check("fc100" in data["text/plain"] and "application/vnd.advx+json" in data, "the table's text and advx's data", sorted(data))

    reply, outputs = run(client, "show grid(test[0..8], cols: 4)")
    images = [o for o in outputs if "image/png" in o["content"].get("data", {})]
    check(reply["status"] == "ok" and len(images) == 1, "grid shows a PNG figure", kinds(outputs))
    png = images[0]["content"]["data"]["image/png"]
    check(png.startswith("iVBORw0KGgo"), "the figure is a base64 PNG", png[:16])

    reply, outputs = run(client, "show evaluate fc10 on test")
    errors = [o for o in outputs if o["msg_type"] == "error"]
    check(reply["status"] == "error" and len(errors) == 1, "an unknown name is an error", (reply, kinds(outputs)))
    traceback = "\n".join(errors[0]["content"]["traceback"])
    check("show evaluate fc10 on test" in traceback and "fc10" in errors[0]["content"]["evalue"],
          "the traceback quotes the line", traceback)
    check("fc100" in traceback, "the diagnostic suggests the near name", traceback)
    check(any(c in traceback for c in "^┬─"), "the traceback marks the culprit", traceback)

    queued_checks(client)
    complete_checks(client)
    interrupt_checks(manager, client)


def queued_checks(client):
    """A failed cell aborts the cells queued behind it, as "Run All" expects."""
    sent = [client.execute(code) for code in ("show nothing_here", "let after = 1", "show test")]
    replies = {}
    while len(replies) < len(sent):
        reply = client.get_shell_msg(timeout=60)
        replies[reply["parent_header"]["msg_id"]] = reply["content"]["status"]
    statuses = [replies[m] for m in sent]
    check(statuses == ["error", "aborted", "aborted"], "a failed cell aborts the cells queued behind it", statuses)
    reply, _ = run(client, "show after")
    check(reply["status"] == "error" and reply["ename"] == "NameError", "an aborted cell did not run", reply)


def complete_checks(client):
    code = "show eva"
    reply = client.complete(code, len(code), reply=True)["content"]
    check("evaluate" in reply["matches"] and reply["cursor_start"] == 5, "Tab completes an operation", reply)
    code = "show evaluate fc100 on te"
    reply = client.complete(code, len(code), reply=True)["content"]
    check("test" in reply["matches"], "Tab completes a binding", reply["matches"])
    code = "let a = lbfgs fc100 on test {\n  ite"
    reply = client.complete(code, len(code), reply=True)["content"]
    check("iterations: " in reply["matches"], "Tab completes the operation's options", reply["matches"])
    code = 'model m = onnx "models/mnist/fc100-1'
    reply = client.complete(code, len(code), reply=True)["content"]
    check("fc100-100-10.onnx" in reply["matches"], "Tab completes paths in strings", reply["matches"])
    code = "show test.sh"
    reply = client.complete(code, len(code), reply=True)["content"]
    check(reply["matches"] == ["shape"], "Tab completes a binding's fields", reply["matches"])

    code = "let a = lbfgs fc100 on test"
    reply = client.inspect(code, 10, reply=True)["content"]
    check(reply["found"] and "usage:" in reply["data"]["text/plain"], "Shift-Tab shows an operation's usage", reply)
    reply = client.inspect("show test", 7, reply=True)["content"]
    check(reply["found"] and "image set" in reply["data"]["text/plain"], "Shift-Tab shows a binding", reply)

    for code, status in [("let xs = [1,", "incomplete"), ("show test", "complete"), ("let = ]", "invalid")]:
        asked = client.is_complete(code)
        reply = client.get_shell_msg(timeout=30)
        check(reply["parent_header"]["msg_id"] == asked, "is_complete replies", reply["parent_header"])
        reply = reply["content"]
        check(reply["status"] == status, f"is_complete({code!r}) is {status}", reply)


def interrupt_checks(manager, client):
    """A cell's outputs show as its statements end; a long attack's progress
    is one display updated in place; the attack stops soon after the
    interrupt, keeping what it finished, and the kernel keeps its bindings."""
    run(client, 'model cnn = onnx "models/mnist/cnn.onnx"')
    message = client.execute("show evaluate fc100 on test\nlet adv = lbfgs cnn on mnist.test[0..2000]")
    early = iopub_until(client, message, lambda m: m["msg_type"] == "display_data" and "text/html" in m["content"]["data"])
    check(early[-1]["msg_type"] == "display_data", "a statement's output shows while the next one runs", kinds(early))
    moving = iopub_until(client, message, lambda m: m["msg_type"] == "update_display_data"
                         and "/2000" in m["content"]["data"]["text/plain"])
    asked = time.monotonic()
    manager.interrupt_kernel()
    reply = client.get_shell_msg(timeout=60)
    waited = time.monotonic() - asked
    check(reply["parent_header"]["msg_id"] == message, "the interrupted cell replies", reply["parent_header"])
    check(reply["content"]["status"] == "error" and reply["content"]["ename"] == "Interrupted",
          f"the interrupt stopped the attack ({waited:.2f} s after it)", reply["content"])

    late = moving + iopub_until(client, message, lambda m: m["msg_type"] == "status" and m["content"]["execution_state"] == "idle")
    bars = [m for m in early + late if m["msg_type"] == "display_data" and "/2000" in m["content"]["data"]["text/plain"]]
    check(len(bars) == 1 and bars[0]["content"]["transient"]["display_id"], "the attack's progress is one display", kinds(late))
    bar = bars[0]["content"]["transient"]["display_id"]
    updates = [m for m in late if m["msg_type"] == "update_display_data" and "/2000" in m["content"]["data"]["text/plain"]]
    check(updates and all(u["content"]["transient"]["display_id"] == bar for u in updates),
          f"the progress is updated in place ({len(updates)} updates)", kinds(late))
    texts = [m["content"]["data"]["text/plain"] for m in bars + updates]
    check(all("/2000" in t and "\x1b" not in t for t in texts), "progress is plain text, no terminal escapes", texts[-1])

    reply, outputs = run(client, "show adv")
    shown = "\n".join(o["content"]["data"]["text/plain"] for o in outputs if o["msg_type"] == "display_data")
    check(reply["status"] == "ok" and "interrupted" in shown.lower(), "the attack's finished examples are kept", shown)
    reply, outputs = run(client, "show evaluate fc100 on test[0..50]")
    check(reply["status"] == "ok" and any(o["msg_type"] == "display_data" for o in outputs),
          "after the interrupt, earlier bindings still work", (reply, kinds(outputs)))


def iopub_until(client, parent, last, timeout=120):
    """The IOPub messages of request `parent`, up to the first for which `last` holds."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = client.get_iopub_msg(timeout=max(deadline - time.monotonic(), 0.1))
        if message["parent_header"].get("msg_id") != parent:
            continue
        seen.append(message)
        if last(message):
            return seen
    raise AssertionError(f"no such message within {timeout} s: {kinds(seen)}")


def restart_checks(manager, client):
    manager.restart_kernel(now=False)
    client.wait_for_ready(timeout=120)
    reply, outputs = run(client, "show test")
    check(reply["status"] == "error" and reply["ename"] == "NameError", "a restart forgets the bindings", reply)
    reply, _ = run(client, "let x = 1")
    check(reply["status"] == "ok" and reply["execution_count"] == 2, "a restarted kernel counts afresh", reply)
    return client


if __name__ == "__main__":
    main()
