"""How the catalog reaches PostgreSQL: point reads by a unique key through SQLAlchemy, from an
asyncio event loop (as the server issues them), with psycopg 3 on worker threads, psycopg 3's
asyncio mode, and asyncpg. Each read is one transaction (as the catalog's are) and, apart,
autocommit. Starts a PostgreSQL server of its own (Debian's package).

    python -m benches.catalog_drivers            # 20,000 reads, 8 at a time, 3 rounds
    python -m benches.catalog_drivers --smoke
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from services import Postgres, postgres_bin

QUERY = text("SELECT id, token_hash, target FROM dev WHERE token_hash = :t")
ROWS = 10_000


def setup(dsn: str) -> None:
    engine = create_engine("postgresql+psycopg://" + dsn)
    with engine.begin() as c:
        c.exec_driver_sql("CREATE TABLE dev (id text PRIMARY KEY, token_hash text UNIQUE, target text)")
        c.execute(text("INSERT INTO dev VALUES (:i, :t, 'x')"), [{"i": f"d{i}", "t": f"t{i}"} for i in range(ROWS)])
    engine.dispose()


async def on_threads(dsn: str, n: int, c: int, iso: str) -> float:
    engine = create_engine("postgresql+psycopg://" + dsn, pool_size=c, isolation_level=iso)
    pool = ThreadPoolExecutor(c)
    loop = asyncio.get_running_loop()

    def one(i: int) -> None:
        with engine.connect() as conn:
            conn.execute(QUERY, {"t": f"t{i % ROWS}"}).mappings().first()
            conn.commit()

    async def worker(k: int) -> None:
        for i in range(k, n, c):
            await loop.run_in_executor(pool, one, i)

    t = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(c)))
    seconds = time.perf_counter() - t
    engine.dispose()
    pool.shutdown()
    return n / seconds


async def on_asyncio(dsn: str, n: int, c: int, iso: str, driver: str) -> float:
    engine = create_async_engine(f"postgresql+{driver}://" + dsn, pool_size=c, isolation_level=iso)

    async def worker(k: int) -> None:
        for i in range(k, n, c):
            async with engine.connect() as conn:
                (await conn.execute(QUERY, {"t": f"t{i % ROWS}"})).mappings().first()
                await conn.commit()

    t = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(c)))
    seconds = time.perf_counter() - t
    await engine.dispose()
    return n / seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    n, rounds = (500, 1) if args.smoke else (20_000, 3)
    found = postgres_bin()
    if found is None:
        print("driver benchmark skipped: needs PostgreSQL (apt-get install postgresql)")
        return 0
    pg = Postgres(found).start()
    try:
        dsn = pg.database().removeprefix("postgresql://")
        setup(dsn)
        for iso in ("REPEATABLE READ", "AUTOCOMMIT"):
            results: dict[str, list[float]] = {"psycopg, threads": [], "psycopg, asyncio": [], "asyncpg": []}
            for _ in range(rounds):
                results["psycopg, threads"].append(asyncio.run(on_threads(dsn, n, 8, iso)))
                results["psycopg, asyncio"].append(asyncio.run(on_asyncio(dsn, n, 8, iso, "psycopg")))
                results["asyncpg"].append(asyncio.run(on_asyncio(dsn, n, 8, iso, "asyncpg")))
            label = "one transaction each" if iso != "AUTOCOMMIT" else "autocommit"
            for name, rates in results.items():
                print(f"{label:22} {name:18} {statistics.median(rates):8.0f} reads/s")
    finally:
        pg.stop()
    if args.smoke:
        print("smoke run: too short for the figures to mean anything")
    return 0


if __name__ == "__main__":
    sys.exit(main())
