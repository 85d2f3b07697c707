"""Clinical shorthand that is also a census name or reads like one: ICU and nursing notes write lines, limbs,
ventilator modes, services and common misspellings in words that a name list holds ("ALINE" an arterial line,
"RUE" the right upper extremity, "johnny" a gown, "neice"). These are ordinary words wherever they stand: no
census list makes them names, no cue pattern takes them for a name or a site, and general-domain NER's hit on
them alone is dropped (a name beside them still is one: "Aline Okafor" keeps "Okafor").

Only generic words belong here: a word that names a person, a place or an institution never does, however often
a corpus writes it (a ward's or a hospital's abbreviation stays PHI: "GH", "VAMC").
"""

from __future__ import annotations

SHORTHAND = frozenset(
    """
aline a-line art-line cvl tlc picc swann foley folley ngt ogt ett iabp rfem lfem bair hugger
rue lue rle lle bue ble rues lues
simv imv psv cpap bipap kvo tko
ew csru crsu micu micua sicu ccu nicu picu pacu cvicu tsicu ir endo neuro nsurg nsg pmd hcp cmo rrt
perrl perrla perl maes kub lp svg pda plb ipmi ami mva atc rij lij
hs noc eves
riss grav fld poss dtr dtrs neice neices niece nieces aunts lib sero spiro chol lac amb aprox
""".split()
)
