"""Operations, one function per verb. They check, change, log and flush; the caller commits once."""
