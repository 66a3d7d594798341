"""kubectl create token (a protobuf TokenRequest) against the emulator, and the token it prints."""

from __future__ import annotations


async def test_kubectl_create_token_and_use_it(kubectl):
    out = await kubectl("create", "token", "default", "--duration=15m", "--audience=https://example.com")
    token = out.stdout.strip()
    assert token.count(".") == 2
    listed = await kubectl("--token", token, "get", "serviceaccounts", "-o", "name")
    assert "serviceaccount/default" in listed.stdout
    refused = await kubectl("create", "token", "default", "--duration=1m", check=False)
    assert refused.returncode != 0 and "may not specify a duration less than 10 minutes" in refused.stderr
