from ._reference import first_price as first_price
from ._reference import pay_your_bid as pay_your_bid
from ._result import KINDS as KINDS
from ._result import NOTIONS as NOTIONS
from ._result import Exploitability as Exploitability
from ._static import AMAOutcome as AMAOutcome
from ._static import DirectMechanism as DirectMechanism
from ._static import exploitability as exploitability
