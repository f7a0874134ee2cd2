#!/usr/bin/env python3
"""Create an SROS2 keystore for gato_ros from config/sros2/policy.xml, with openssl (no ros2 CLI needed).

  python3 scripts/sros2_keystore.py --keystore ~/gato_keystore [--policy config/sros2/policy.xml] [--days 365]

Layout (the one `ros2 security create_keystore` / `create_enclave` writes, so rcl finds it):
  KEYSTORE/public/{ca.cert.pem, identity_ca.cert.pem, permissions_ca.cert.pem}
  KEYSTORE/private/{ca.key.pem, identity_ca.key.pem, permissions_ca.key.pem}
  KEYSTORE/enclaves/governance.{xml,p7s}
  KEYSTORE/enclaves/<enclave>/{cert.pem, key.pem, identity_ca.cert.pem, permissions_ca.cert.pem,
                               governance.p7s, permissions.xml, permissions.p7s}
One CA (EC prime256v1) serves as identity and permissions CA, like sros2's default. Governance: discovery,
liveliness and RTPS protection ENCRYPT, unauthenticated participants refused, topic access enforced.

Run the nodes with (docs/safety.md, "SROS2"):
  export ROS_SECURITY_KEYSTORE=~/gato_keystore ROS_SECURITY_ENABLE=true ROS_SECURITY_STRATEGY=Enforce
  safety_controller_node --ros-args --enclave /gato/safety_controller_node ...
The private keys are written 0600; keep KEYSTORE/private off the robot.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DDS_SECURITY = 'http://www.omg.org/spec/DDS-SECURITY/20170901/omg_shared_ca_permissions.xsd'
GOVERNANCE_XSD = 'http://www.omg.org/spec/DDS-SECURITY/20170901/omg_shared_ca_governance.xsd'


def openssl(*args: str, stdin: bytes | None = None) -> None:
    result = subprocess.run(['openssl', *args], input=stdin, capture_output=True)
    if result.returncode != 0:
        sys.exit(f'openssl {" ".join(args)} failed:\n{result.stderr.decode()}')


def dds_topic(name: str) -> str:
    return 'rt' + name


def dds_service(name: str) -> tuple[str, str]:
    return f'rq{name}Request', f'rr{name}Reply'


def grants(profile: ET.Element) -> tuple[list[str], list[str]]:
    """(DDS topics this profile may publish, may subscribe) from one sros2 <profile>."""
    publish, subscribe = [], []
    for block in profile:
        names = [e.text.strip() for e in block]
        if block.tag == 'topics':
            if block.get('publish') == 'ALLOW':
                publish += [dds_topic(n) for n in names]
            if block.get('subscribe') == 'ALLOW':
                subscribe += [dds_topic(n) for n in names]
        elif block.tag == 'services':
            for n in names:
                request, reply = dds_service(n)
                if block.get('reply') == 'ALLOW':      # the server reads requests and writes replies
                    subscribe.append(request)
                    publish.append(reply)
                if block.get('request') == 'ALLOW':    # the client writes requests and reads replies
                    publish.append(request)
                    subscribe.append(reply)
    # Every ROS 2 node: rosout, parameter events, the discovery topic and its own parameter services.
    node = f'{profile.get("ns").rstrip("/")}/{profile.get("node")}'
    publish += ['rt/rosout', 'rt/parameter_events', 'ros_discovery_info']
    subscribe += ['rt/parameter_events', 'ros_discovery_info']
    for service in ('describe_parameters', 'get_parameter_types', 'get_parameters', 'list_parameters',
                    'set_parameters', 'set_parameters_atomically', 'get_type_description'):
        request, reply = dds_service(f'{node}/{service}')
        subscribe.append(request)
        publish.append(reply)
    return publish, subscribe


def permissions_xml(enclave: str, publish: list[str], subscribe: list[str], days: int) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    until = now + datetime.timedelta(days=days)

    def topics(names):
        return ''.join(f'<topic>{n}</topic>' for n in sorted(set(names)))
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<dds xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xsi:noNamespaceSchemaLocation="{DDS_SECURITY}"><permissions>'
            f'<grant name="{enclave}"><subject_name>CN={enclave}</subject_name>'
            f'<validity><not_before>{now.isoformat().replace("+00:00", "")}</not_before>'
            f'<not_after>{until.isoformat().replace("+00:00", "")}</not_after></validity>'
            f'<allow_rule><domains><id_range><min>0</min><max>232</max></id_range></domains>'
            f'<publish><topics>{topics(publish)}</topics></publish>'
            f'<subscribe><topics>{topics(subscribe)}</topics></subscribe></allow_rule>'
            f'<default>DENY</default></grant></permissions></dds>\n')


GOVERNANCE = f'''<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="{GOVERNANCE_XSD}">
  <domain_access_rules><domain_rule>
    <domains><id_range><min>0</min><max>232</max></id_range></domains>
    <allow_unauthenticated_participants>false</allow_unauthenticated_participants>
    <enable_join_access_control>true</enable_join_access_control>
    <discovery_protection_kind>ENCRYPT</discovery_protection_kind>
    <liveliness_protection_kind>ENCRYPT</liveliness_protection_kind>
    <rtps_protection_kind>SIGN</rtps_protection_kind>
    <topic_access_rules><topic_rule>
      <topic_expression>*</topic_expression>
      <enable_discovery_protection>true</enable_discovery_protection>
      <enable_liveliness_protection>true</enable_liveliness_protection>
      <enable_read_access_control>true</enable_read_access_control>
      <enable_write_access_control>true</enable_write_access_control>
      <metadata_protection_kind>ENCRYPT</metadata_protection_kind>
      <data_protection_kind>ENCRYPT</data_protection_kind>
    </topic_rule></topic_access_rules>
  </domain_rule></domain_access_rules>
</dds>
'''


def sign(ca_cert: Path, ca_key: Path, source: Path, target: Path) -> None:
    openssl('smime', '-sign', '-text', '-in', str(source), '-out', str(target), '-signer', str(ca_cert),
            '-inkey', str(ca_key))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--keystore', required=True, type=Path)
    parser.add_argument('--policy', type=Path, default=ROOT / 'config' / 'sros2' / 'policy.xml')
    parser.add_argument('--days', type=int, default=365, help='validity of certificates and permissions')
    args = parser.parse_args(argv)
    ks = args.keystore
    public, private, enclaves = ks / 'public', ks / 'private', ks / 'enclaves'
    for folder in (public, private, enclaves):
        folder.mkdir(parents=True, exist_ok=True)
    os.chmod(private, 0o700)
    ca_key, ca_cert = private / 'ca.key.pem', public / 'ca.cert.pem'
    if not ca_key.exists():
        openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', str(ca_key))
        os.chmod(ca_key, 0o600)
        openssl('req', '-new', '-x509', '-key', str(ca_key), '-out', str(ca_cert), '-days', str(args.days),
                '-subj', '/CN=gato_ros keystore CA', '-sha256')
    for name in ('identity_ca', 'permissions_ca'):
        for folder, suffix, source in ((public, 'cert.pem', ca_cert), (private, 'key.pem', ca_key)):
            link = folder / f'{name}.{suffix}'
            if not link.exists():
                link.symlink_to(source.name)
    governance = enclaves / 'governance.xml'
    governance.write_text(GOVERNANCE)
    sign(ca_cert, ca_key, governance, enclaves / 'governance.p7s')

    policy = ET.parse(args.policy).getroot()
    made = []
    for enclave in policy.iter('enclave'):
        path = enclave.get('path')
        publish, subscribe = [], []
        for profile in enclave.iter('profile'):
            p, s = grants(profile)
            publish += p
            subscribe += s
        folder = enclaves / path.strip('/')
        folder.mkdir(parents=True, exist_ok=True)
        key, cert = folder / 'key.pem', folder / 'cert.pem'
        openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', str(key))
        os.chmod(key, 0o600)
        with tempfile.TemporaryDirectory() as tmp:
            csr = Path(tmp) / 'req.csr'
            subject = '/CN=' + path.replace('/', '\\/')  # openssl -subj: '/' inside a value is escaped
            openssl('req', '-new', '-key', str(key), '-out', str(csr), '-subj', subject, '-sha256')
            openssl('x509', '-req', '-in', str(csr), '-CA', str(ca_cert), '-CAkey', str(ca_key), '-CAcreateserial',
                    '-out', str(cert), '-days', str(args.days), '-sha256')
        for name in ('identity_ca.cert.pem', 'permissions_ca.cert.pem'):
            (folder / name).write_bytes(ca_cert.read_bytes())
        (folder / 'governance.p7s').write_bytes((enclaves / 'governance.p7s').read_bytes())
        (folder / 'permissions.xml').write_text(permissions_xml(path, publish, subscribe, args.days))
        sign(ca_cert, ca_key, folder / 'permissions.xml', folder / 'permissions.p7s')
        made.append(f'{path}: publish {len(set(publish))}, subscribe {len(set(subscribe))} DDS topics')
    print(f'keystore {ks}:')
    for line in made:
        print('  ' + line)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
