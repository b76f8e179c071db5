"""A Flask application (Debian's python3-flask) for tests/e2e/test_python.py."""

import hashlib

from flask import Flask, Response, abort, jsonify, make_response, request, stream_with_context

app = Flask(__name__)


@app.route("/form", methods=["POST"])
def form():
    return f"name={request.form['name']} colour={request.form.get('colour', '-')}"


@app.route("/cookie/set")
def set_cookie():
    response = make_response("cookie set")
    response.set_cookie("flavour", "hazelnut")
    return response


@app.route("/cookie/get")
def get_cookie():
    return f"flavour={request.cookies.get('flavour', 'none')}"


@app.route("/json")
def json_answer():
    return jsonify(framework="flask", script_root=request.script_root, path=request.path,
                   args=request.args.to_dict())


@app.route("/stream")
def stream():
    def generate():
        for index in range(3):
            yield f"chunk {index};"
    return Response(stream_with_context(generate()), mimetype="text/plain")


@app.route("/upload", methods=["POST"])
def upload():
    uploaded = request.files["document"]
    data = uploaded.read()
    return jsonify(filename=uploaded.filename, size=len(data),
                   sha256=hashlib.sha256(data).hexdigest(), note=request.form.get("note"))


@app.route("/boom")
def boom():
    raise RuntimeError("flask view failed on purpose")


@app.route("/refuse")
def refuse():
    abort(403)
