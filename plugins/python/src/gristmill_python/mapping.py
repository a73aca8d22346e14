"""Which PyPI distribution provides an imported module.

Most distributions are named after their top-level module (``requests``, ``numpy``), with
``_`` written ``-`` (``slack_sdk`` -> ``slack-sdk``). The table below lists the well-known
exceptions, and the namespace packages whose distribution is named after a deeper part of
the module path (``google.cloud.bigquery`` -> ``google-cloud-bigquery``). A script whose
import is missing here can name its distribution with ``# pin:`` on the import line, or
list it under ``# extra_requirements:``.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["distribution_for"]

# Module path (or a prefix of it) -> requirement. Only real mismatches: a name that differs
# from its module only by case or by ``_``/``-`` needs no entry (PyPI names are normalized).
# The longest matching prefix wins, so ``google.protobuf`` beats the ``google`` namespace.
MODULES: Final[dict[str, str]] = {
    # Data formats and parsing
    "yaml": "PyYAML",
    "attr": "attrs",
    "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil",
    "dotenv": "python-dotenv",
    "docx": "python-docx",
    "pptx": "python-pptx",
    "fitz": "PyMuPDF",
    "pdfminer": "pdfminer.six",
    "fpdf": "fpdf2",
    "tabula": "tabula-py",
    "shapefile": "pyshp",
    "osgeo": "GDAL",
    "magic": "python-magic",
    "multipart": "python-multipart",
    "slugify": "python-slugify",
    "barcode": "python-barcode",
    "snappy": "python-snappy",
    "readability": "readability-lxml",
    "speech_recognition": "SpeechRecognition",
    "mailparser": "mail-parser",
    # Images, science, machine learning
    "PIL": "pillow",
    "cv2": "opencv-python",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "umap": "umap-learn",
    "faiss": "faiss-cpu",
    "Bio": "biopython",
    "mpl_toolkits": "matplotlib",
    "llama_index": "llama-index",
    "weaviate": "weaviate-client",
    "community": "python-louvain",
    "OpenGL": "PyOpenGL",
    "haystack": "haystack-ai",
    # Databases and queues
    "psycopg2": "psycopg2-binary",
    # The binary extra brings libpq along: a worker need not have it installed.
    "psycopg": "psycopg[binary]",
    "MySQLdb": "mysqlclient",
    "mysql": "mysql-connector-python",
    "bson": "pymongo",
    "gridfs": "pymongo",
    "snowflake.connector": "snowflake-connector-python",
    "snowflake.snowpark": "snowflake-snowpark-python",
    "opensearchpy": "opensearch-py",
    "memcache": "python-memcached",
    "kafka": "kafka-python",
    "nats": "nats-py",
    "zmq": "pyzmq",
    "playhouse": "peewee",
    # Security and cryptography
    "jwt": "PyJWT",
    "jose": "python-jose",
    "Crypto": "pycryptodome",
    "Cryptodome": "pycryptodomex",
    "OpenSSL": "pyOpenSSL",
    "nacl": "PyNaCl",
    "argon2": "argon2-cffi",
    "gnupg": "python-gnupg",
    "ldap": "python-ldap",
    "saml2": "pysaml2",
    "onelogin": "python3-saml",
    # Services and their clients
    "wmill": "wmill",
    "googleapiclient": "google-api-python-client",
    "github": "PyGithub",
    "gitlab": "python-gitlab",
    "git": "GitPython",
    "telegram": "python-telegram-bot",
    "slack": "slackclient",
    "discord": "discord.py",
    "shopify": "ShopifyAPI",
    "atlassian": "atlassian-python-api",
    "jenkins": "python-jenkins",
    "consul": "python-consul",
    "trello": "py-trello",
    "hubspot": "hubspot-api-client",
    "msgraph": "msgraph-sdk",
    "socketio": "python-socketio",
    "engineio": "python-engineio",
    "websocket": "websocket-client",
    "seleniumwire": "selenium-wire",
    "suds": "suds-community",
    "smb": "pysmb",
    "smbclient": "smbprotocol",
    "whois": "python-whois",
    "nmap": "python-nmap",
    "winrm": "pywinrm",
    "dns": "dnspython",
    "grpc": "grpcio",
    "pkg_resources": "setuptools",
    # Hardware and the desktop
    "serial": "pyserial",
    "usb": "pyusb",
    "RPi": "RPi.GPIO",
    "Xlib": "python-xlib",
    "wx": "wxPython",
    "gi": "PyGObject",
    "cairo": "pycairo",
    "dbus": "dbus-python",
    "win32api": "pywin32",
    "win32con": "pywin32",
    "win32com": "pywin32",
    "pythoncom": "pywin32",
    "pywintypes": "pywin32",
    # Parts of namespaces that do not follow their namespace's rule
    "google.protobuf": "protobuf",
    "google.auth": "google-auth",
    "google.oauth2": "google-auth",
    "google.rpc": "googleapis-common-protos",
    "google.type": "googleapis-common-protos",
    "google.analytics.data": "google-analytics-data",
    "google.analytics.admin": "google-analytics-admin",
}

# Namespace packages: the distribution is the prefix plus the next part of the module path
# (``azure.storage.blob`` -> ``azure-storage-blob``). Deeper namespaces come first in the
# lookup because the longest prefix wins.
NAMESPACES: Final[dict[str, str]] = {
    "google": "google-",
    "google.cloud": "google-cloud-",
    "azure": "azure-",
    "azure.ai": "azure-ai-",
    "azure.data": "azure-data-",
    "azure.keyvault": "azure-keyvault-",
    "azure.mgmt": "azure-mgmt-",
    "azure.monitor": "azure-monitor-",
    "azure.storage": "azure-storage-",
    "backports": "backports.",
    "jaraco": "jaraco.",
    "ruamel": "ruamel.",
    "zope": "zope.",
    "paho": "paho-",
    "sphinxcontrib": "sphinxcontrib-",
}

# A valid distribution name (PEP 508): ASCII letters, digits, and inner ``.``, ``_``, ``-``.
_VALID_NAME: Final = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")


def distribution_for(module: str) -> str | None:
    """The requirement that provides ``module`` (a dotted path: ``google.cloud.storage``).

    ``None`` when no distribution can be named: a bare namespace (``import google.cloud``)
    or a module name that is no valid distribution name (``_private``, non-ASCII), which is
    left for the script to fail on with Python's own ImportError.
    """
    parts = module.split(".")
    for depth in range(len(parts), 0, -1):
        prefix = ".".join(parts[:depth])
        known = MODULES.get(prefix)
        if known is not None:
            return known
        namespace = NAMESPACES.get(prefix)
        if namespace is not None:
            if depth == len(parts):
                return None
            return _valid(namespace + parts[depth].replace("_", "-"))
    return _valid(parts[0].replace("_", "-"))


def _valid(name: str) -> str | None:
    return name if _VALID_NAME.fullmatch(name) else None
