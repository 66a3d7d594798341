import filecmp
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_committed_grpc_stubs_match_the_proto(tmp_path):
    subprocess.run([str(ROOT / "hack" / "gen-proto.sh"), str(tmp_path)], check=True, cwd=ROOT)
    committed = ROOT / "fluxqueue" / "fluxion" / "_proto"
    for name in ("fluxion_pb2.py", "fluxion_pb2.pyi", "fluxion_pb2_grpc.py"):
        assert filecmp.cmp(tmp_path / name, committed / name, shallow=False), (
            f"{name} is stale: run hack/gen-proto.sh"
        )


def test_public_service_keeps_fluxion_field_numbers_and_enum_values():
    from fluxqueue.fluxion._proto import fluxion_pb2 as pb

    svc = pb.DESCRIPTOR.services_by_name["FluxionService"]
    assert svc.full_name == "fluxion.FluxionService"
    assert {m.name for m in svc.methods} == {"Init", "Match", "Cancel"}

    def fields(msg):
        return {f.name: f.number for f in msg.DESCRIPTOR.fields}

    assert fields(pb.InitRequest) == {"policy": 1, "jgf": 2}
    assert fields(pb.InitResponse) == {"status": 1}
    assert fields(pb.MatchRequest) == {"jobspec": 1, "request": 2, "reservation": 3}
    assert fields(pb.MatchResponse) == {
        "allocation": 1, "jobid": 2, "reserved": 3, "at": 4, "overhead": 5, "status": 6,
    }  # fmt: skip
    assert fields(pb.CancelRequest) == {"jobID": 2}
    assert fields(pb.CancelResponse) == {"jobID": 1, "error": 2, "status": 3}
    assert (pb.InitResponse.INIT_SUCCESS, pb.InitResponse.INIT_ERROR, pb.InitResponse.INIT_DENIED) == (
        0,
        1,
        2,
    )
    assert (pb.MatchResponse.MATCH_SUCCESS, pb.MatchResponse.MATCH_ERROR, pb.MatchResponse.MATCH_DENIED) == (
        0,
        1,
        2,
    )
    assert (
        pb.CancelResponse.CANCEL_SUCCESS,
        pb.CancelResponse.CANCEL_REQUEST_ERROR,
        pb.CancelResponse.CANCEL_ERROR,
        pb.CancelResponse.CANCEL_DENIED,
    ) == (0, 1, 2, 3)
