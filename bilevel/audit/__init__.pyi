from ._result import KINDS as KINDS
from ._result import NOTIONS as NOTIONS
from ._result import Exploitability as Exploitability
