#!/usr/bin/env python3
"""Installation and packaging tests (tests/install/CMakeLists.txt registers them).

find_package: `cmake --install` the build tree into a scratch prefix, build examples/cpp_consumer as a project of its
own against that prefix (find_package(syncline), CMAKE_PREFIX_PATH) and run its --self-check.

deb: `cpack -G DEB`, check the package's control fields and files, install it with dpkg into a scratch root (its own
dpkg database), then run the installed /usr/bin/syncline with the installed example config (its database moved to a
scratch folder, on a free port) until GET /healthz answers, and stop it with SIGTERM.

Every step prints what it runs; the first failure exits 1 with the reason.
"""

import argparse
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request


def fail(message):
    print("FAIL: " + message, flush=True)
    sys.exit(1)


def run(command, **kwargs):
    print("$ " + " ".join(command), flush=True)
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)
    if result.returncode != 0:
        print(result.stdout)
        fail("%s exited %d" % (command[0], result.returncode))
    return result.stdout


def expect_file(path):
    if not os.path.isfile(path):
        fail("missing: " + path)
    print("found " + path)


def fresh_dir(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_find_package(args):
    work = fresh_dir(args.work)
    prefix = os.path.join(work, "prefix")
    run([args.cmake, "--install", args.build, "--prefix", prefix])
    expect_file(os.path.join(prefix, "bin", "syncline"))
    expect_file(os.path.join(prefix, "include", "syncline", "transport", "server.hpp"))
    expect_file(os.path.join(prefix, "include", "syncline", "core", "model", "model.hpp"))
    configs = glob.glob(os.path.join(prefix, "lib*", "**", "cmake", "syncline", "synclineConfig.cmake"), recursive=True)
    if not configs:
        fail("no lib*/cmake/syncline/synclineConfig.cmake under " + prefix)
    expect_file(os.path.join(os.path.dirname(configs[0]), "synclineConfigVersion.cmake"))
    if not glob.glob(os.path.join(prefix, "lib*", "**", "libsyncline_core.a"), recursive=True):
        fail("no libsyncline_core.a under " + prefix)
    # The systemd unit and /etc config are the package's (component "system"), never a plain install's.
    for absolute in ("/lib/systemd/system/syncline.service", "/etc/syncline/config.json"):
        if os.path.exists(os.path.join(prefix, absolute.lstrip("/"))):
            fail(absolute + " installed under the prefix")

    consumer = os.path.join(work, "consumer")
    configure = [args.cmake, "-S", os.path.join(args.source, "examples", "cpp_consumer"), "-B", consumer,
                 "-DCMAKE_PREFIX_PATH=" + prefix, "-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_CXX_COMPILER=" + args.cxx]
    if shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    if shutil.which("ccache"):
        configure += ["-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"]
    print(run(configure))
    # The headers must come from the prefix: a path into the source tree would hide a header left out of the install.
    with open(os.path.join(consumer, "CMakeCache.txt")) as cache:
        dirs = [line for line in cache if line.startswith("syncline_DIR:")]
    if not dirs or not dirs[0].strip().split("=", 1)[1].startswith(prefix):
        fail("find_package(syncline) did not use the prefix: %s" % dirs)
    run([args.cmake, "--build", consumer, "--verbose"])
    build_files = glob.glob(os.path.join(consumer, "*.ninja"))
    build_files += glob.glob(os.path.join(consumer, "**", "flags.make"), recursive=True)
    for build_file in build_files:
        with open(build_file) as f:
            text = f.read()
        for module in ("core", "auth", "storage", "observer", "transport", "config"):
            if os.path.join(args.source, module, "include") in text:
                fail("%s includes %s/include from the source tree" % (build_file, module))

    program = glob.glob(os.path.join(consumer, "**", "syncline_example_cpp"), recursive=True)
    if not program:
        fail("syncline_example_cpp was not built")
    database = os.path.join(work, "self-check.db")
    output = run([program[0], "--self-check", database], timeout=120)
    print(output)
    if "self-check ok" not in output:
        fail("the example's self-check did not report success")
    print("PASS: examples/cpp_consumer built with find_package(syncline) against %s and ran" % prefix)


def test_deb(args):
    work = fresh_dir(args.work)
    package_dir = os.path.join(work, "package")
    run([args.cpack, "-G", "DEB", "--config", os.path.join(args.build, "CPackConfig.cmake"), "-B", package_dir])
    debs = glob.glob(os.path.join(package_dir, "*.deb"))
    if len(debs) != 1:
        fail("expected one .deb in %s, found %s" % (package_dir, debs))
    deb = debs[0]
    print("package: " + deb)

    fields = run(["dpkg-deb", "-f", deb, "Package", "Version", "Depends"])
    print(fields)
    control = dict(line.split(": ", 1) for line in fields.strip().splitlines())
    if control.get("Package") != "syncline" or control.get("Version") != args.version:
        fail("Package/Version: %s" % control)
    # Depends comes from dpkg-shlibdeps: the shared libraries the binary loads.
    depends = control.get("Depends", "")
    for library in ("libsqlite3", "libpq5", "libhiredis", "libjwt", "libspdlog", "libc6"):
        if library not in depends:
            fail("Depends lacks %s: %s" % (library, depends))

    contents = run(["dpkg-deb", "-c", deb])
    paths = [line.split()[-1] for line in contents.splitlines() if line.strip()]
    for path in ("./usr/bin/syncline", "./lib/systemd/system/syncline.service", "./etc/syncline/config.json"):
        if path not in paths:
            fail("the package lacks %s:\n%s" % (path, contents))
    if any(p.startswith("./usr/include") or p.endswith(".a") for p in paths):
        fail("the runtime package holds headers or static libraries:\n" + contents)
    conffiles = run(["dpkg-deb", "-I", deb, "conffiles"])
    if "/etc/syncline/config.json" not in conffiles:
        fail("/etc/syncline/config.json is not a conffile: " + conffiles)

    # dpkg -i into a root of its own: an empty dpkg database, so the dependencies (installed on this machine, where
    # the binary runs) are not known there: --force-depends.
    root = fresh_dir(os.path.join(work, "root"))
    admin = os.path.join(root, "var", "lib", "dpkg")
    for sub in ("info", "updates", "triggers"):
        os.makedirs(os.path.join(admin, sub))
    open(os.path.join(admin, "status"), "w").close()
    env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin")
    run(["dpkg", "--root=" + root, "--force-not-root", "--force-depends", "--force-script-chrootless",
         "--log=" + os.path.join(work, "dpkg.log"), "-i", deb], env=env)
    status = run(["dpkg-query", "--admindir=" + admin, "-W", "-f=${Status} ${Version}", "syncline"])
    if status != "install ok installed " + args.version:
        fail("dpkg-query: " + status)
    syncline = os.path.join(root, "usr", "bin", "syncline")
    unit = os.path.join(root, "lib", "systemd", "system", "syncline.service")
    installed_config = os.path.join(root, "etc", "syncline", "config.json")
    for path in (syncline, unit, installed_config):
        expect_file(path)
    with open(unit) as f:
        if "ExecStart=/usr/bin/syncline serve --config /etc/syncline/config.json" not in f.read():
            fail("the unit does not start /usr/bin/syncline with /etc/syncline/config.json")

    version = run([syncline, "--version"])
    if args.version not in version:
        fail("--version printed %r" % version)

    with open(installed_config) as f:
        config = json.load(f)
    if config.get("database") != "/var/lib/syncline/blog.db":
        fail("the packaged config's database is %r, not in the unit's StateDirectory" % config.get("database"))
    shipped = {"/": "/usr/share/syncline/web", "/client/": "/usr/share/syncline/client"}
    if config.get("static") != shipped:
        fail("the packaged config's static folders are %r, not the package's %r" % (config.get("static"), shipped))
    expect_file(os.path.join(root, "usr", "share", "syncline", "web", "index.html"))
    expect_file(os.path.join(root, "usr", "share", "syncline", "client", "syncline.mjs"))
    # The same config, inside the scratch root: its database, and the demo page's folders.
    state = os.path.join(root, "var", "lib", "syncline")
    os.makedirs(state, exist_ok=True)
    config["database"] = os.path.join(state, "blog.db")
    config["static"] = {prefix: root + folder for prefix, folder in shipped.items()}
    scratch_config = os.path.join(work, "config.json")
    with open(scratch_config, "w") as f:
        json.dump(config, f)
    run([syncline, "check", "--config", scratch_config])

    port = free_port()
    command = [syncline, "serve", "--config", scratch_config, "--port", str(port)]
    print("$ " + " ".join(command), flush=True)
    log_path = os.path.join(work, "serve.log")
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        body = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=2) as response:
                    if response.status == 200:
                        body = response.read().decode()
                        break
            except OSError:
                time.sleep(0.2)
        if body is None:
            with open(log_path) as log:
                print(log.read())
            fail("GET /healthz never answered 200 (server %s)" % ("exited %s" % server.returncode
                                                                   if server.poll() is not None else "running"))
        print("GET /healthz: " + body)
        if json.loads(body) != {"status": "ok"}:
            fail("unexpected /healthz body: " + body)
        if not os.path.isfile(config["database"]):
            fail("the server did not create its database at " + config["database"])
        # The packaged demo page, and the client module it imports, are served.
        for path, expected in (("/", "<html"), ("/client/syncline.mjs", "export")):
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as response:
                text = response.read().decode()
                if response.status != 200 or expected not in text:
                    fail("GET %s: %d, %r" % (path, response.status, text[:200]))
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
        if code != 0:
            fail("syncline serve exited %d after SIGTERM" % code)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    print("PASS: %s installed into %s; its syncline served its example config and demo page and stopped on SIGTERM"
          % (deb, root))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cmake", required=True)
    parser.add_argument("--build", required=True, help="the configured and built syncline tree")
    parser.add_argument("--work", required=True, help="a scratch folder (emptied first)")
    commands = parser.add_subparsers(dest="command", required=True)
    find_package = commands.add_parser("find_package")
    find_package.add_argument("--source", required=True)
    find_package.add_argument("--cxx", required=True)
    deb = commands.add_parser("deb")
    deb.add_argument("--cpack", required=True)
    deb.add_argument("--version", required=True)
    args = parser.parse_args()
    if args.command == "find_package":
        test_find_package(args)
    else:
        test_deb(args)


if __name__ == "__main__":
    main()
