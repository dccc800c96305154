"""wn_nltk.py - opens NLTK's WordNet reader on Debian's WordNet 3.0 files (wordnet-base).

Debian's package lacks the `lexnames` file NLTK's reader wants, so this makes a temporary
folder with symbolic links to the Debian files plus a `lexnames` written here (the 45
lexicographer file names with their part-of-speech numbers), as DESIGN.md describes.
Shared by the oracles in tests/py and the reference in bench/.
"""
import os
import tempfile

LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute "
    "noun.body noun.cognition noun.communication noun.event noun.feeling noun.food noun.group "
    "noun.location noun.motive noun.object noun.person noun.phenomenon noun.plant "
    "noun.possession noun.process noun.quantity noun.relation noun.shape noun.state "
    "noun.substance noun.time verb.body verb.change verb.cognition verb.communication "
    "verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion "
    "verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
POS_NUM = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}


def open_wordnet(debian_dir="/usr/share/wordnet"):
    """Returns (reader, tmpdir); keep tmpdir alive while the reader is used."""
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    tmp = tempfile.TemporaryDirectory(prefix="cfx_wn_")
    for name in os.listdir(debian_dir):
        os.symlink(os.path.join(debian_dir, name), os.path.join(tmp.name, name))
    with open(os.path.join(tmp.name, "lexnames"), "w") as f:
        for i, name in enumerate(LEXNAMES):
            f.write("%02d\t%s\t%d\n" % (i, name, POS_NUM[name.split(".")[0]]))
    return WordNetCorpusReader(tmp.name, None), tmp


def is_name(concept):
    """The same rule as cfx_wordnet_is_name: "<lemma>.n.<digits>"."""
    parts = concept.rsplit(".", 2)
    return len(parts) == 3 and parts[1] == "n" and parts[2].isdigit() and parts[0] != ""


def synset_of(wn, concept):
    """A synset name, or a plain word's first noun sense (NLTK's morphy)."""
    if is_name(concept):
        return wn.synset(concept)
    return wn.synsets(concept.replace(" ", "_"), pos="n")[0]


def concept_set(wn, concept):
    """The reference's concept set: the synset names on the first longest hypernym path
    (max returns the first of maximal length) plus the word before the first dot."""
    best = max(synset_of(wn, concept).hypernym_paths(), key=len)
    return [s.name() for s in best] + [concept.replace(" ", "_").split(".")[0]]
