// Written by `cgdm web`: the names of the weights installed with that cgdm, by id.
globalThis.CGDM_WEIGHTS = {
 "00000000": "none",
 "1bca2eb0": "cgdm-av1-5",
 "1c42c21e": "cgdm-av1-4",
 "506e564b": "cgdm-av1",
 "bf1dd9f6": "cgdm-av1-3",
 "d5c2b35d": "cgdm-av1-2",
 "fd2b8633": "cgdm-av1-3"
};
