"""Kraftwerk's example Flask site: a page, static files, uploads, PostgreSQL and Redis."""
import os
import re

from flask import Flask, abort, request

# Static files are served by nginx from the release's static/ folder; Flask must not shadow /static.
app = Flask(__name__, static_folder=None)

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>flask-hello</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body><h1>{greeting}</h1>
<p>flask-hello is running on <code>{host}</code>.</p>
<form action="/upload" method="post" enctype="multipart/form-data">
<input type="file" name="file"> <button>Upload</button></form>
<p><a href="/db">PostgreSQL</a> · <a href="/redis">Redis counter</a></p>
</body></html>"""


@app.get("/")
def index():
    return PAGE.format(greeting=os.environ.get("GREETING", "Hello"), host=request.host)


@app.get("/health")
def health():
    return "ok\n"


@app.post("/upload")
def upload():
    uploaded = request.files.get("file")
    if uploaded is None or not uploaded.filename:
        abort(400, "no file")
    # Keep a plain, safe file name: letters, digits, dot, dash and underscore.
    name = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(uploaded.filename)).lstrip(".") or "upload"
    uploaded.save(os.path.join(os.environ["UPLOADS_PATH"], name))
    return f"/uploads/{name}\n", 201


@app.route("/db", methods=["GET", "POST"])
def db():
    import psycopg2

    with psycopg2.connect(os.environ["DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS visits (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())")
        cur.execute("INSERT INTO visits DEFAULT VALUES")
        cur.execute("SELECT count(*), current_user, current_database() FROM visits")
        count, user, database = cur.fetchone()
    return f"visits={count} user={user} database={database}\n"


@app.route("/redis", methods=["GET", "POST"])
def counter():
    import redis

    r = redis.Redis.from_url(os.environ["REDIS_URL"])
    value = r.incr(os.environ["REDIS_KEY_PREFIX"] + "counter")
    return f"counter={value}\n"
