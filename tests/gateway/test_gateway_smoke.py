from conftest import GatewayProcess
import urllib.request, json

def test_ready_and_probe(gateway: GatewayProcess) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{gateway.port}/readyz") as r:
        assert json.load(r)["ready"] is True
    assert gateway.stop() == 0
