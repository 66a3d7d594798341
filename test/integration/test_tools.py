import subprocess


def test_real_kubectl_client_runs(tools):
    out = subprocess.run(
        [str(tools.kubectl), "version", "--client"], capture_output=True, text=True, check=True
    )
    assert "Client Version: v1.35" in out.stdout


def test_real_helm_runs(tools):
    out = subprocess.run([str(tools.helm), "version"], capture_output=True, text=True, check=True)
    assert 'Version:"v4.' in out.stdout
