"""`invoke base-image`: the registry-free base image of model containers."""

from __future__ import annotations

from invoke import Context, Exit, task

from clipper_deploy.cli.common import console, load_inventory, say
from clipper_deploy.hosts.base_image import BaseImageShipError, ensure_base_image
from clipper_deploy.hosts.connection import HostGroup
from clipper_deploy.images.base import BaseImageError, BaseImageSpec
from clipper_deploy.images.build import build_base_tarball, compressed_tarball


@task(
    name="base-image",
    help={
        "python": "Python major.minor of the image (default: this client's)",
        "hosts": "inventory pattern of hosts to load it on (default: none, only build)",
        "inventory": "inventory file (default: the test bed's, when it is up)",
    },
)
def base_image(
    c: Context, python: str | None = None, hosts: str | None = None, inventory: str | None = None
) -> None:
    """Build the registry-free base image (mmdebstrap, cached) and load it on hosts."""
    try:
        spec = BaseImageSpec(python=python) if python else BaseImageSpec()
        tarball = compressed_tarball(build_base_tarball(spec, say=say), say)
    except BaseImageError as exc:
        raise Exit(str(exc), code=1) from exc
    console.print(f"Base image {spec.tag} ready to ship: {tarball}")
    if hosts:
        inv = load_inventory(c, inventory)
        with HostGroup(inv.hosts(hosts)) as group:
            try:
                ensure_base_image(group, spec, tarball, say=say)
            except BaseImageShipError as exc:
                raise Exit(str(exc), code=1) from exc
