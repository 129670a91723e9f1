import shutil
from pathlib import Path
from tests.chaos.diskfull import size_limited_fs, fill_leaving
from tests.chaos.scenario import write_photos
from tests.support.daemons import make_agent, start_server, run_cli
def test_x(tmp_path: Path, pki) -> None:
    with size_limited_fs(tmp_path / "server" / "storage", 48) as m:
        server = start_server(tmp_path / "server", pki, extra={"storage": {"min_free_space": "4MB"}})
        print("after start", shutil.disk_usage(m))
        fill_leaving(m, 6 << 20)
        print("after fill", shutil.disk_usage(m))
        agent = make_agent(tmp_path / "laptop", pki, "laptop", server)
        write_photos(agent.watches["photos"], range(120))
        p = run_cli("agent", "--config", str(agent.config_path), "--once")
        print(p.stdout[-500:])
        print("after once", shutil.disk_usage(m))
        import subprocess; print(subprocess.run(["du","-sh",str(m/"objects"),str(m/"partial"),str(m/"catalog.db"),str(m/"catalog.db-wal")],capture_output=True,text=True).stdout)
        server.daemon.kill()
        print([l[:300] for l in server.daemon.log().splitlines() if "file_committed" not in l][-5:])
