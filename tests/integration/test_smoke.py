from __future__ import annotations

import httpx


async def test_preview_runs_python(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/w/main/jobs/run_wait_result/preview",
        json={
            "content": "def main(x: int):\n    print('hi', x)\n    return x * 2\n",
            "language": "python3",
            "args": {"x": 21},
        },
    )
    assert r.status_code == 200, r.text
    assert r.json() == 42
