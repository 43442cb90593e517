import Glimpse
print("glimpse \(Glimpse.version)")
