"""The sample's universe: organizations, their projects and people (a pure function of the seed), and
:func:`write_reference_data`, its users / projects / organizations CSVs."""

from __future__ import annotations

import csv
import random
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_ORG_NAMES = [
    "Acme Corp", "Globex Inc", "Initech", "Umbrella Labs", "Hooli", "Wayne Enterprises",
    "Stark Industries", "Cyberdyne Systems", "Soylent Co", "Tyrell Corp",
]
_PROJECT_KINDS = [
    "Web App", "Mobile App", "Marketing Site", "Data Platform", "Internal Tools", "Checkout",
    "Billing Service", "Docs", "Admin Console", "Partner Portal",
]
_FIRST = [
    "Jane", "John", "Priya", "Wei", "Carlos", "Fatima", "Olga", "Kwame", "Mei", "Liam", "Aisha",
    "Noah", "Sofia", "Mateo", "Yuki", "Elena", "Omar", "Chloé", "Ravi", "Ingrid", "Tomás", "Zoe",
    "Hiro", "Amara", "Lukas", "Nadia", "Diego", "Freya", "Sam", "Anya", "Björn", "Leila",
]
_LAST = [
    "Doe", "Smith", "Patel", "Zhang", "García", "Haddad", "Ivanova", "Mensah", "Chen", "O'Brien",
    "Khan", "Müller", "Rossi", "Silva", "Tanaka", "Novak", "Farouk", "Dubois", "Iyer", "Larsen",
    "Kowalski", "Nguyen", "Okafor", "Schmidt", "Fernández", "Petrova", "Costa", "Berg", "Reyes",
    "Walsh", "Johansson", "Abebe",
]
_USERS_PER_ORG = 20
_PROJECTS_PER_ORG = 4
_N_ORGS = 3


@dataclass(frozen=True)
class _Org:
    id: str
    name: str
    domain: str


@dataclass(frozen=True)
class _Project:
    team_id: int
    org: int  # index into orgs
    name: str


@dataclass(frozen=True)
class _User:
    id: int
    uuid: str
    email: str
    first_name: str
    last_name: str
    org: int
    role: str
    ips: tuple[str, ...]

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "uuid": self.uuid,
            "email": self.email,
            "first_name": self.first_name,
            "last_name": self.last_name,
        }


def _uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _ascii_slug(text: str, sep: str = ".") -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return sep.join("".join(c for c in part if c.isalnum()) for part in folded.lower().split())


@dataclass
class _Universe:
    orgs: list[_Org]
    projects: list[_Project]
    users: list[_User]
    users_by_org: list[list[_User]]
    admins_by_org: list[list[_User]]
    user_weights_by_org: list[list[float]]

    @staticmethod
    def build(seed: int) -> "_Universe":
        rng = random.Random(f"activitylog-universe-{seed}")
        orgs = []
        for name in rng.sample(_ORG_NAMES, _N_ORGS):
            orgs.append(_Org(id=_uuid4(rng), name=name, domain=_ascii_slug(name, "-") + ".example"))
        projects = []
        for o, org in enumerate(orgs):
            short = org.name.split()[0]
            for kind in rng.sample(_PROJECT_KINDS, _PROJECTS_PER_ORG):
                projects.append(_Project(team_id=len(projects) + 1, org=o, name=f"{short} {kind}"))
        ids = sorted(rng.sample(range(1, 4000), _N_ORGS * _USERS_PER_ORG))
        rng.shuffle(ids)
        users: list[_User] = []
        emails: set[str] = set()
        for o, org in enumerate(orgs):
            for k in range(_USERS_PER_ORG):
                first, last = rng.choice(_FIRST), rng.choice(_LAST)
                local = f"{_ascii_slug(first)}.{_ascii_slug(last)}"
                email, n = f"{local}@{org.domain}", 2
                while email in emails:
                    email, n = f"{local}{n}@{org.domain}", n + 1
                emails.add(email)
                role = "owner" if k == 0 else "admin" if k <= 3 else "member"
                n_ips = 1 if rng.random() < 0.7 else 2
                ips = tuple(
                    f"2001:db8:{o + 1:x}::{rng.randrange(1, 0xFFFF):x}"
                    if rng.random() < 0.08
                    else f"{rng.choice(('203.0.113', '198.51.100'))}.{rng.randrange(1, 255)}"
                    for _ in range(n_ips)
                )
                users.append(
                    _User(
                        id=ids[len(users)], uuid=_uuid4(rng), email=email, first_name=first,
                        last_name=last, org=o, role=role, ips=ips,
                    )
                )
        users_by_org = [[u for u in users if u.org == o] for o in range(len(orgs))]
        admins_by_org = [[u for u in us if u.role != "member"] for us in users_by_org]
        # A few people do most of the work.
        weights = [[round(1.0 / (1 + i) ** 0.8, 6) for i in range(len(us))] for us in users_by_org]
        for w in weights:
            rng.shuffle(w)
        return _Universe(orgs, projects, users, users_by_org, admins_by_org, weights)


def write_reference_data(directory: Path, *, seed: int = 20240115) -> dict[str, Path]:
    """Write users.csv, projects.csv and organizations.csv for the universe of ``seed``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    uni = _Universe.build(seed)
    paths = {
        "users": directory / "users.csv",
        "projects": directory / "projects.csv",
        "organizations": directory / "organizations.csv",
    }
    with paths["users"].open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "uuid", "email", "first_name", "last_name", "organization_id", "role"])
        for u in sorted(uni.users, key=lambda u: u.id):
            w.writerow([u.id, u.uuid, u.email, u.first_name, u.last_name, uni.orgs[u.org].id, u.role])
    with paths["projects"].open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["team_id", "organization_id", "name"])
        for p in uni.projects:
            w.writerow([p.team_id, uni.orgs[p.org].id, p.name])
    with paths["organizations"].open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["organization_id", "name"])
        for org in uni.orgs:
            w.writerow([org.id, org.name])
    return paths
