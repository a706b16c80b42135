"""A small Hrana v2 client over HTTP: the protocol libSQL server speaks on
`POST /v2/pipeline`, with the standard library only.

A `Stream` is one server connection: each pipeline request carries the baton
of the previous response, so a transaction opened by one request is still open
in the next. A replica forwards a stream to its primary once the stream has
opened a transaction (`BEGIN IMMEDIATE` as its own request); a request whose
statements all read as queries runs on the replica's copy (docs/scaling.md).
One `http.client` connection per stream, kept alive.
"""

import http.client
import json


class HranaError(Exception):
    """A statement the server refused: `message` and `code` as it sent them."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.message = message
        self.code = code


def _arg(value):
    if value is None:
        return {"type": "null"}
    if isinstance(value, bool):
        return {"type": "integer", "value": str(int(value))}
    if isinstance(value, int):
        return {"type": "integer", "value": str(value)}
    if isinstance(value, float):
        return {"type": "float", "value": value}
    return {"type": "text", "value": str(value)}


def _value(cell):
    kind = cell["type"]
    if kind == "null":
        return None
    if kind == "integer":
        return int(cell["value"])
    if kind == "float":
        return float(cell["value"])
    if kind == "blob":
        return cell["base64"]
    return cell["value"]


class Stream:
    """One Hrana stream on `host:port`; close it to release the server's
    connection (an open transaction is rolled back)."""

    def __init__(self, host, port, timeout=60):
        self.http = http.client.HTTPConnection(host, port, timeout=timeout)
        self.baton = None
        self.closed = False

    def _pipeline(self, requests):
        body = {"baton": self.baton, "requests": requests}
        self.http.request("POST", "/v2/pipeline", json.dumps(body),
                          {"Content-Type": "application/json"})
        response = self.http.getresponse()
        data = response.read()
        if response.status != 200:
            raise HranaError(f"HTTP {response.status}: {data.decode(errors='replace')}")
        reply = json.loads(data)
        self.baton = reply.get("baton")
        return reply["results"]

    def execute_many(self, statements):
        """Runs `[(sql, args), ...]` as one pipeline request, each statement
        its own execute; returns each one's rows, or raises the first error."""
        requests = [{"type": "execute", "stmt": {"sql": sql, "args": [_arg(a) for a in args]}}
                    for sql, args in statements]
        out = []
        for result in self._pipeline(requests):
            if result["type"] == "error":
                raise HranaError(result["error"]["message"], result["error"].get("code"))
            rows = result["response"]["result"]["rows"]
            out.append([[_value(c) for c in row] for row in rows])
        return out

    def batch(self, statements):
        """Runs `[(sql, args), ...]` as one Hrana `batch` request: one program
        for the server (a replica runs it on its own copy when every statement
        reads as a query). Returns each step's rows, or raises the first
        step's error."""
        steps = [{"stmt": {"sql": sql, "args": [_arg(a) for a in args]}}
                 for sql, args in statements]
        (result,) = self._pipeline([{"type": "batch", "batch": {"steps": steps}}])
        if result["type"] == "error":
            raise HranaError(result["error"]["message"], result["error"].get("code"))
        batch = result["response"]["result"]
        for error in batch["step_errors"]:
            if error is not None:
                raise HranaError(error["message"], error.get("code"))
        return [[[_value(c) for c in row] for row in r["rows"]] if r else None
                for r in batch["step_results"]]

    def execute(self, sql, *args):
        """One statement as one request; returns its rows."""
        return self.execute_many([(sql, args)])[0]

    def one(self, sql, *args):
        """The first column of the first row of one statement."""
        rows = self.execute(sql, *args)
        return rows[0][0] if rows else None

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                if self.baton is not None:
                    self._pipeline([{"type": "close"}])
            finally:
                self.http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def query(host, port, sql, *args):
    """One statement in a stream of its own (autocommit); returns its rows."""
    with Stream(host, port) as s:
        return s.execute(sql, *args)
